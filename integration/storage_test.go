package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// Storage tests: chats are stored before they are acked, offline users get them after a
// gateway restart and after kill -9 of the storage plugin, history and recall.

// storageConfig writes a configuration with storage in a directory of its own and
// returns its path (the same file restarts a gateway on the same data).
func storageConfig(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`listen: "127.0.0.1:0"
auth:
  mode: open
api:
  keys: [%q]
storage:
  plugin: bolt
  dir: %q
  recall_window: 1m
  page_size: 50
%s
hooks:
  enabled: false   # no rate limit: the tests send bursts
log:
  level: debug
`, testAPIKey, filepath.Join(dir, "data"), extra)
	path := filepath.Join(dir, "timgw.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// storedAck is the data of a cmd 12 answer of a stored chat.
type storedAck struct {
	ID         string `json:"id"`
	Seq        int64  `json:"seq"`
	ServerTime int64  `json:"serverTime"`
	CreateTime int64  `json:"createTime"`
	Duplicate  bool   `json:"duplicate"`
}

// messagePage is the data of a cmd 20 answer.
type messagePage struct {
	UserID    string                   `json:"userId"`
	Friends   map[string][]packet.Chat `json:"friends"`
	Groups    map[string][]packet.Chat `json:"groups"`
	Cursor    int64                    `json:"cursor"`
	Confirmed int64                    `json:"confirmed"`
	More      bool                     `json:"more"`
}

// ids lists the ids of the chats of a page, friends then groups, in order.
func (p *messagePage) ids() []string {
	var out []string
	for _, k := range slices.Sorted(mapKeys(p.Friends)) {
		for _, c := range p.Friends[k] {
			out = append(out, string(c.ID))
		}
	}
	for _, k := range slices.Sorted(mapKeys(p.Groups)) {
		for _, c := range p.Groups[k] {
			out = append(out, string(c.ID))
		}
	}
	return out
}

func mapKeys(m map[string][]packet.Chat) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// query sends cmd 19 and requires code want.
func query(t *testing.T, c *timclient.Conn, body map[string]any, want packet.Status) *messagePage {
	t.Helper()
	r, err := c.Request(packet.CmdGetMessageReq, body, wait)
	mustCode(t, fmt.Sprintf("cmd 19 %v", body), r, err, want)
	var p messagePage
	if err := r.DataInto(&p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// drainOffline fetches and confirms every offline message of c's user, returning their
// ids in the order received.
func drainOffline(t *testing.T, c *timclient.Conn, user string) []string {
	t.Helper()
	var ids []string
	ack := int64(0)
	for range 100 {
		p := query(t, c, map[string]any{"userId": user, "type": 0, "ack": ack}, packet.StatusGetOfflineMsgOK)
		got := p.ids()
		if len(got) == 0 {
			return ids
		}
		ids = append(ids, got...)
		ack = p.Cursor
	}
	t.Fatal("offline messages did not run out")
	return nil
}

// startStorageGateway starts a gateway on cfgPath for t (stopped when t ends, unless
// the test stops it first).
func startStorageGateway(t *testing.T, name, cfgPath string) *gateway {
	t.Helper()
	g, err := startGateway(name, gwConfig{File: cfgPath})
	if err != nil {
		t.Fatal(err)
	}
	g.attach(t)
	t.Cleanup(func() {
		if err := g.stop(); err != nil {
			t.Error(err)
		}
	})
	return g
}

func stopGateway(t *testing.T, g *gateway) {
	t.Helper()
	if err := g.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestStorageOfflineAcrossRestart sends private and group chats to an offline user,
// restarts the gateway, and checks the user gets them all (once confirmed, no more), and
// that a resend after the restart is answered as a duplicate.
func TestStorageOfflineAcrossRestart(t *testing.T) {
	t.Parallel()
	cfg := storageConfig(t, "")
	alice, bob, room := uid("st-alice"), uid("st-bob"), uid("st-room")
	g := startStorageGateway(t, "storage-restart-1", cfg)

	// bob joins the room, then leaves (goes offline).
	b := g.login(t, epTCP, bob)
	if _, err := b.JoinGroup(room, wait); err != nil {
		t.Fatal(err)
	}
	b.Close()

	a := g.login(t, epWS, alice)
	if _, err := a.JoinGroup(room, wait); err != nil {
		t.Fatal(err)
	}
	var acks []storedAck
	for i := range 3 {
		r, err := a.Chat(packet.Chat{ID: packet.Str(fmt.Sprintf("p%d", i)), To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: fmt.Sprint("private ", i)}, wait)
		mustCode(t, "private chat to offline bob", r, err, packet.StatusOffline)
		var ack storedAck
		if err := r.DataInto(&ack); err != nil {
			t.Fatal(err)
		}
		if ack.Seq != int64(i+1) || ack.ServerTime == 0 {
			t.Errorf("ack %d: %+v, want seq %d", i, ack, i+1)
		}
		acks = append(acks, ack)
	}
	r, err := a.Chat(packet.Chat{ID: "g0", GroupID: packet.Str(room), ChatType: packet.ChatTypeGroup, Content: "to the room"}, wait)
	mustCode(t, "group chat", r, err, packet.StatusOK)
	a.Close()

	stopGateway(t, g)
	g2 := startStorageGateway(t, "storage-restart-2", cfg)

	// A resend of p1 after the restart: the first answer again, not stored twice.
	a2 := g2.login(t, epTCP, alice)
	r, err = a2.Chat(packet.Chat{ID: "p1", To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: "private 1"}, wait)
	var dup storedAck
	if err == nil {
		err = r.DataInto(&dup)
	}
	if err != nil || dup.Seq != acks[1].Seq || dup.ServerTime != acks[1].ServerTime || !dup.Duplicate {
		t.Errorf("resend after restart: %+v (%v), want the first answer %+v and duplicate", dup, err, acks[1])
	}

	b2 := g2.login(t, epTCP, bob)
	first := query(t, b2, map[string]any{"userId": bob, "type": 0}, packet.StatusGetOfflineMsgOK)
	if got := first.Friends[alice]; len(got) != 3 || got[0].Content != "private 0" || got[2].Seq != 3 {
		t.Errorf("bob's offline private chats after restart: %+v", got)
	}
	if got := first.Groups[room]; len(got) != 1 || got[0].Content != "to the room" || string(got[0].From) != alice {
		t.Errorf("bob's offline group chats after restart: %+v", got)
	}
	// Not confirmed: asked again, the same messages.
	again := query(t, b2, map[string]any{"userId": bob, "type": 0}, packet.StatusGetOfflineMsgOK)
	if !slices.Equal(again.ids(), first.ids()) {
		t.Errorf("unconfirmed offline messages changed: %v then %v", first.ids(), again.ids())
	}
	// Confirmed: gone from offline, still in history.
	after := query(t, b2, map[string]any{"userId": bob, "type": 0, "ack": first.Cursor}, packet.StatusGetOfflineMsgOK)
	if after.Confirmed != 4 || len(after.ids()) != 0 {
		t.Errorf("after ack %d: confirmed %d, left %v", first.Cursor, after.Confirmed, after.ids())
	}
	h := query(t, b2, map[string]any{"userId": bob, "type": 1, "fromUserId": alice}, packet.StatusGetHistoryOK)
	if got := h.ids(); !slices.Equal(got, []string{"p0", "p1", "p2"}) {
		t.Errorf("history after confirm: %v", got)
	}
	// The group survived the restart: bob (not logged in since) is still a member.
	gh := query(t, b2, map[string]any{"userId": bob, "type": 1, "groupId": room}, packet.StatusGetHistoryOK)
	if got := gh.ids(); !slices.Equal(got, []string{"g0"}) {
		t.Errorf("group history after restart: %v", got)
	}
}

// pluginPid returns the pid of the storage plugin process of gateway g.
func pluginPid(t *testing.T, g *gateway) int {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if pids := childPIDs(t, g, "__plugin\x00storage"); len(pids) > 0 {
			return pids[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no storage plugin process under gateway pid %d", g.cmd.Process.Pid)
	return 0
}

// TestStorageKillPlugin sends a stream of chats while the storage plugin is killed with
// SIGKILL: every chat acked (10000/10001) must reach the offline receiver, the others are
// refused with 10030 (not acked) and stored once when resent; the plugin comes back.
func TestStorageKillPlugin(t *testing.T) {
	t.Parallel()
	cfg := storageConfig(t, "")
	g := startStorageGateway(t, "storage-kill", cfg)
	alice, bob := uid("kill-alice"), uid("kill-bob")
	a := g.login(t, epTCP, alice)

	const n = 400
	send := func(i int) {
		if err := a.Send(packet.CmdChatReq, packet.Chat{Cmd: packet.Int(packet.CmdChatReq), ID: packet.Str(fmt.Sprintf("k%03d", i)),
			To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: fmt.Sprint("message ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	pid := pluginPid(t, g)
	firstPid := pid
	acked := map[string]bool{}
	var refused []string
	lastAcked := "" // ids sort in send order
	read := func() {
		p, err := a.Expect(packet.CmdChatResp, wait)
		if err != nil {
			t.Fatal(err)
		}
		r, err := timclient.DecodeResponse(p)
		if err != nil {
			t.Fatal(err)
		}
		var ack storedAck
		_ = json.Unmarshal(r.Data, &ack)
		switch r.Code {
		case packet.StatusOK, packet.StatusOffline:
			if ack.ID <= lastAcked {
				t.Errorf("ack of %s after the ack of %s: acks must keep the send order", ack.ID, lastAcked)
			}
			lastAcked = ack.ID
			acked[ack.ID] = true
		case packet.StatusStorageUnavailable:
			refused = append(refused, r.Msg)
		default:
			t.Fatalf("answer %d %q", r.Code, r.Msg)
		}
	}
	// Up to 16 chats in flight; the plugin is killed when a third are acked.
	const window = 16
	for i := range n {
		send(i)
		if i >= window {
			read()
		}
		if len(acked) == n/3 && pid != 0 {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			t.Logf("plugin %d killed after %d acks, %d chats sent", pid, len(acked), i+1)
			pid = 0
		}
	}
	for range min(n, window) {
		read()
	}
	t.Logf("%d acked, %d refused (10030) around the kill %v", len(acked), len(refused), refused)
	if pid != 0 {
		t.Fatal("the plugin was never killed")
	}
	if newPid := pluginPid(t, g); newPid == firstPid {
		t.Fatalf("the plugin was not restarted")
	}
	// Resend everything: acked ones are duplicates, refused ones get stored now.
	for i := range n {
		id := fmt.Sprintf("k%03d", i)
		r, err := a.Chat(packet.Chat{ID: packet.Str(id), To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: fmt.Sprint("message ", i)}, wait)
		mustCode(t, "resend "+id, r, err, packet.StatusOffline)
		var ack storedAck
		_ = r.DataInto(&ack)
		if acked[id] && !ack.Duplicate {
			t.Errorf("%s was acked before the kill but its resend was stored again", id)
		}
	}
	b := g.login(t, epWS, bob)
	got := drainOffline(t, b, bob)
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Errorf("%s delivered twice", id)
		}
		seen[id] = true
	}
	for id := range acked {
		if !seen[id] {
			t.Errorf("acked chat %s lost after kill -9 of the plugin", id)
		}
	}
	if len(seen) != n {
		t.Errorf("bob got %d distinct chats, want %d", len(seen), n)
	}
}

// TestStorageHistoryRoamingRecall checks history paging from a second device, sync from
// a seq, and recall: the receiver online gets cmd 16, history shows the recall.
func TestStorageHistoryRoamingRecall(t *testing.T) {
	t.Parallel()
	g := startStorageGateway(t, "storage-history", storageConfig(t, ""))
	alice, bob, carol := uid("h-alice"), uid("h-bob"), uid("h-carol")
	a := g.login(t, epTCP, alice)
	b := g.login(t, epWS, bob)
	for i := 1; i <= 10; i++ {
		r, err := a.Chat(packet.Chat{ID: packet.Str(fmt.Sprintf("h%d", i)), To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: fmt.Sprint("m", i)}, wait)
		mustCode(t, "chat", r, err, packet.StatusOK)
		mustRecvChat(t, b, "bob")
	}
	// A second device of alice pages through the history.
	a2 := g.login(t, epWS, alice)
	latest := query(t, a2, map[string]any{"type": 1, "fromUserId": bob, "count": 3, "reverse": true}, packet.StatusGetHistoryOK)
	if got := latest.Friends[bob]; len(got) != 3 || got[0].Seq != 8 || got[2].Seq != 10 || !latest.More {
		t.Errorf("latest 3: %+v more=%v", got, latest.More)
	}
	back := query(t, a2, map[string]any{"type": 1, "fromUserId": bob, "count": 3, "reverse": true, "beforeSeq": 8}, packet.StatusGetHistoryOK)
	if got := back.Friends[bob]; len(got) != 3 || got[0].Seq != 5 {
		t.Errorf("3 before seq 8: %+v", got)
	}
	sync := query(t, a2, map[string]any{"type": 1, "fromUserId": bob, "afterSeq": 7}, packet.StatusGetHistoryOK)
	if got := sync.ids(); !slices.Equal(got, []string{"h8", "h9", "h10"}) {
		t.Errorf("sync after seq 7: %v", got)
	}
	// carol may not read alice and bob's conversation as hers: she sees her own (empty).
	c := g.login(t, epTCP, carol)
	if cq := query(t, c, map[string]any{"type": 1, "fromUserId": bob}, packet.StatusGetHistoryOK); len(cq.ids()) != 0 {
		t.Errorf("carol sees %v", cq.ids())
	}
	if r, err := c.Request(packet.CmdGetMessageReq, map[string]any{"userId": alice, "type": 0}, wait); err != nil || r.Code != packet.StatusForbidden {
		t.Errorf("carol reading alice's offline messages: %v %v", r, err)
	}
	// Recall h9: the answer, and cmd 16 to bob and alice's other device.
	r, err := a.Request(packet.CmdCancelMsgReq, map[string]any{"id": "h9", "to": bob}, wait)
	mustCode(t, "recall", r, err, packet.StatusOK)
	for who, conn := range map[string]*timclient.Conn{"bob": b, "alice's second device": a2} {
		p, err := conn.Expect(packet.CmdCancelMsgResp, wait)
		if err != nil {
			t.Fatalf("%s: no recall notice: %v", who, err)
		}
		n, _ := timclient.DecodeResponse(p)
		var ev packet.Chat
		if err := n.DataInto(&ev); err != nil || ev.ID != "h9" || !ev.Recalled || ev.Seq != 11 {
			t.Errorf("%s: recall notice %s", who, p.Body)
		}
	}
	if r, err := b.Request(packet.CmdCancelMsgReq, map[string]any{"id": "h8", "to": alice}, wait); err != nil || r.Code != packet.StatusNotFound {
		t.Errorf("bob recalling alice's chat: %v %v, want 10031", r, err)
	}
	h := query(t, b, map[string]any{"type": 1, "fromUserId": alice, "afterSeq": 8}, packet.StatusGetHistoryOK)
	got := h.Friends[alice]
	if len(got) != 3 || !got[0].Recalled || got[0].Content != "" || got[2].Cmd != packet.Int(packet.CmdCancelMsgResp) {
		t.Errorf("history after recall: %+v", got)
	}
	// An administrator recalls through the HTTP API, with no recall window: h10.
	api := g.api(t, epHTTP)
	res, err := api.Post("/api/v1/messages/recall", map[string]string{"from": alice, "id": "h10", "to": bob, "by": "ops"})
	if err != nil || res.Status != 200 || !strings.Contains(string(res.Body), `"code":10000`) {
		t.Fatalf("admin recall: %v %v", res, err)
	}
	if p, err := b.Expect(packet.CmdCancelMsgResp, wait); err != nil || !strings.Contains(string(p.Body), `"h10"`) {
		t.Errorf("bob: no notice of the admin recall: %v %v", p, err)
	}
	for _, tc := range []struct {
		body   map[string]string
		status int
		code   string
	}{
		{map[string]string{"from": alice, "id": "nope", "to": bob}, 404, `"code":10031`},
		{map[string]string{"from": alice, "id": "h7"}, 400, `"code":10020`},
	} {
		res, err := api.Post("/api/v1/messages/recall", tc.body)
		if err != nil || res.Status != tc.status || !strings.Contains(string(res.Body), tc.code) {
			t.Errorf("admin recall %v: %v %v, want HTTP %d %s", tc.body, res, err, tc.status, tc.code)
		}
	}
	// Chats of a group need membership.
	if r, err := b.Request(packet.CmdGetMessageReq, map[string]any{"type": 1, "groupId": uid("nogroup")}, wait); err != nil || r.Code != packet.StatusNotGroupMember {
		t.Errorf("history of a group bob is not in: %v %v, want 10025", r, err)
	}
}
