package integration

import (
	"strings"
	"testing"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// TestLeaveGroup leaves a group with cmd 21 over TCP and WebSocket: the answer is cmd
// 22 (10000), the members left behind get cmd 10, the leaver no longer gets the group's
// chats, and after a restart the membership stays gone (storage remembers the leave).
func TestLeaveGroup(t *testing.T) {
	t.Parallel()
	cfg := storageConfig(t, "")
	group := uid("leave")
	alice, bob, carol := uid("lv-alice"), uid("lv-bob"), uid("lv-carol")
	g := startStorageGateway(t, "leave-1", cfg)
	a := g.login(t, epTCP, alice)
	b := g.login(t, epWS, bob)
	c := g.login(t, epTCP, carol)
	for who, conn := range map[string]*timclient.Conn{alice: a, bob: b, carol: c} {
		mustJoin(t, conn, group, who)
		mustSync(t, conn, who) // the join's notices are out before the next join
	}
	for who, conn := range map[string]*timclient.Conn{bob: b, carol: c} {
		r, err := conn.Request(packet.CmdLeaveGroupReq, map[string]any{"groupId": group}, wait)
		mustCode(t, who+" leaving", r, err, packet.StatusOK)
		mustNotice(t, a, packet.CmdExitGroupNotify, who, group, "alice told "+who+" left")
	}
	r, err := b.Request(packet.CmdLeaveGroupReq, map[string]any{"groupId": group}, wait)
	mustCode(t, "bob leaving again", r, err, packet.StatusNotGroupMember)

	r, err = a.Chat(packet.Chat{ChatType: packet.ChatTypeGroup, GroupID: packet.Str(group), Content: "only alice now"}, wait)
	mustAccepted(t, r, err)
	mustNotGet(t, b, packet.CmdChatReq, "bob after leaving")
	r, err = b.Chat(packet.Chat{ChatType: packet.ChatTypeGroup, GroupID: packet.Str(group), Content: "let me back"}, wait)
	mustCode(t, "bob sending after leaving", r, err, packet.StatusNotGroupMember)

	stopGateway(t, g)
	g = startStorageGateway(t, "leave-2", cfg)
	b = g.login(t, epWS, bob)
	r, err = b.Chat(packet.Chat{ChatType: packet.ChatTypeGroup, GroupID: packet.Str(group), Content: "after the restart"}, wait)
	mustCode(t, "bob sending after a restart", r, err, packet.StatusNotGroupMember)
}

// TestTypingSignals sends typing signals (cmd 23) over TCP and WebSocket: the peer and
// the sender's other devices get cmd 24 with the server's from, a group's members get
// it too, nothing is stored, and a flood is refused with 10028.
func TestTypingSignals(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	group := uid("typing")
	alice, bob := uid("ty-alice"), uid("ty-bob")
	a1 := g.login(t, epTCP, alice)
	a2 := g.login(t, epWS, alice)
	b := g.login(t, epWS, bob)
	mustJoin(t, a1, group, "alice")
	mustJoin(t, b, group, "bob")
	mustSync(t, a1, "alice")
	mustSync(t, b, "bob")

	expectTyping := func(c *timclient.Conn, who, state string) {
		t.Helper()
		p, err := c.Expect(packet.CmdTypingNotify, wait)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		body := string(p.Body)
		if !strings.Contains(body, `"from":"`+alice+`"`) || !strings.Contains(body, `"state":"`+state+`"`) {
			t.Fatalf("%s got %s, want from %s and state %s", who, body, alice, state)
		}
	}
	if err := a1.Send(packet.CmdTypingReq, map[string]any{"to": bob, "from": "mallory"}); err != nil {
		t.Fatal(err)
	}
	expectTyping(b, "bob (ws)", "typing")
	expectTyping(a2, "alice's other device (ws)", "typing")
	if err := a2.Send(packet.CmdTypingReq, map[string]any{"groupId": group, "state": "paused"}); err != nil {
		t.Fatal(err)
	}
	expectTyping(b, "bob in the group", "paused")
	expectTyping(a1, "alice's first device in the group (tcp)", "paused")
	mustNotGet(t, a2, packet.CmdTypingNotify, "the sending connection")

	// A flood: the burst passes, then 10028 answers in a cmd 23 packet.
	for range 30 {
		if err := a1.Send(packet.CmdTypingReq, map[string]any{"to": bob}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := a1.Expect(packet.CmdTypingReq, wait)
	if err != nil {
		t.Fatalf("no refusal for a flood of typing signals: %v", err)
	}
	if r, err := timclient.DecodeResponse(p); err != nil || r.Code != packet.StatusRateLimited {
		t.Fatalf("flood answer %s (%v), want 10028", p.Body, err)
	}
}
