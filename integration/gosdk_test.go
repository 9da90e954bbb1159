package integration

// Tests of the Go client SDK (sdk/go/timgw) against the real gateway: login, chats both
// ways on both protocols, groups, reconnection after a kick with the offline messages
// delivered once, typing, receipts, conversations, history and recall.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/sdk/go/timgw"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// sdkEvents records a client's events and lets a test wait for one.
type sdkEvents struct {
	mu  sync.Mutex
	all []timgw.Event
	ch  chan timgw.Event
}

// sdkDial logs user in with the Go SDK at url (the test certificate trusted), with
// opts; the client is closed when t ends.
func sdkDial(t *testing.T, url, user string, opts timgw.Options) (*timgw.Client, *sdkEvents) {
	t.Helper()
	ev := &sdkEvents{ch: make(chan timgw.Event, 4096)}
	opts.UserID, opts.Password = user, "x"
	opts.Wire.TLSConfig = certs.TLSConfig()
	opts.OnEvent = func(e timgw.Event) {
		ev.mu.Lock()
		ev.all = append(ev.all, e)
		ev.mu.Unlock()
		ev.ch <- e
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := timgw.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("SDK login %s at %s: %v", user, url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, ev
}

// next waits for the next event that match accepts, skipping others.
func (e *sdkEvents) next(t *testing.T, what string, match func(timgw.Event) bool) timgw.Event {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case ev := <-e.ch:
			if match(ev) {
				return ev
			}
		case <-deadline:
			e.mu.Lock()
			defer e.mu.Unlock()
			t.Fatalf("no %s within %v; events: %+v", what, wait, e.all)
		}
	}
}

// message waits for the chat whose content is content.
func (e *sdkEvents) message(t *testing.T, content string) timgw.Message {
	t.Helper()
	return e.next(t, "message "+content, func(ev timgw.Event) bool {
		m, ok := ev.(timgw.Message)
		return ok && m.Content == content
	}).(timgw.Message)
}

// messages returns the Message events recorded so far whose id is id.
func (e *sdkEvents) messages(id string) []timgw.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []timgw.Message
	for _, ev := range e.all {
		if m, ok := ev.(timgw.Message); ok && m.ID == id {
			out = append(out, m)
		}
	}
	return out
}

func sdkCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// sdkPair logs in two new users: a on WebSocket, b on t-im TCP.
func sdkPair(t *testing.T, g *gateway, prefix string) (a, b string, ca, cb *timgw.Client, ea, eb *sdkEvents) {
	t.Helper()
	a, b = uid(prefix+"a"), uid(prefix+"b")
	ca, ea = sdkDial(t, epWS.url(g.Addr, "/"), a, timgw.Options{})
	cb, eb = sdkDial(t, epTCP.url(g.Addr, ""), b, timgw.Options{})
	return a, b, ca, cb, ea, eb
}

// TestGoSDKChat: alice on WebSocket and bob on t-im TCP log in, chat both ways with the
// cmd 12 answers, and chat in a group they joined.
func TestGoSDKChat(t *testing.T) {
	g := mainGateway(t)
	ctx := sdkCtx(t)
	alice, bob, ca, cb, ea, eb := sdkPair(t, g, "gs")
	if u := ca.User(); u.UserID != alice {
		t.Fatalf("alice's user: %+v", u)
	}

	ack, err := ca.Chat(ctx, bob, "hi bob")
	if err != nil || ack.Code != packet.StatusOK || ack.ID == "" || ack.Seq <= 0 || ack.Delivered < 1 {
		t.Fatalf("alice's chat: %+v %v; want code 10000 with id, seq and a delivery", ack, err)
	}
	m := eb.message(t, "hi bob")
	if m.From != alice || m.To != bob || m.ID != ack.ID || m.Seq != ack.Seq || m.Offline || m.ChatType != packet.ChatTypePrivate {
		t.Fatalf("bob got %+v; want alice's live chat %+v", m, ack)
	}
	ack, err = cb.Chat(ctx, alice, "hi alice")
	if err != nil || ack.Code != packet.StatusOK {
		t.Fatalf("bob's chat: %+v %v", ack, err)
	}
	if m := ea.message(t, "hi alice"); m.From != bob || m.ID != ack.ID {
		t.Fatalf("alice got %+v", m)
	}

	// A resend of the same id is answered as a duplicate and not delivered again.
	dup, err := cb.Send(ctx, packet.Chat{ID: packet.Str(ack.ID), To: packet.Str(alice), Content: "hi alice"})
	if err != nil || !dup.Duplicate || dup.Seq != ack.Seq {
		t.Fatalf("resend: %+v %v; want the first answer marked duplicate", dup, err)
	}

	room := uid("gsroom")
	for _, c := range []*timgw.Client{ca, cb} {
		if grp, err := c.Join(ctx, room); err != nil || grp.GroupID != room {
			t.Fatalf("join %s: %+v %v", room, grp, err)
		}
	}
	gack, err := ca.ChatGroup(ctx, room, "hi room")
	if err != nil || gack.Code != packet.StatusOK {
		t.Fatalf("group chat: %+v %v", gack, err)
	}
	if m := eb.message(t, "hi room"); m.GroupID != room || m.From != alice || m.ChatType != packet.ChatTypeGroup {
		t.Fatalf("bob got %+v from the group", m)
	}
	if err := cb.Leave(ctx, room); err != nil {
		t.Fatalf("leave: %v", err)
	}
	var refused *timgw.Error
	if _, err := cb.ChatGroup(ctx, room, "not a member"); !errors.As(err, &refused) || refused.Code != packet.StatusNotGroupMember {
		t.Fatalf("chat to a group left: %v; want an *Error with 10025", err)
	}
	if n := len(ea.messages(ack.ID)); n != 1 {
		t.Fatalf("bob's chat %s emitted %d times to alice; want once", ack.ID, n)
	}
}

// TestGoSDKReconnectAfterKick: a kick through the HTTP API closes bob's connection; the
// client reports it, waits its backoff, logs in again, and the chats sent meanwhile
// arrive once, marked offline, and are confirmed on the gateway.
func TestGoSDKReconnectAfterKick(t *testing.T) {
	g := mainGateway(t)
	ctx := sdkCtx(t)
	alice, bob := uid("gka"), uid("gkb")
	ca, _ := sdkDial(t, epTCP.url(g.Addr, ""), alice, timgw.Options{})
	// The backoff leaves a window (3 s, no jitter) for alice's chats to find bob offline.
	backoff := timgw.Backoff{Min: 3 * time.Second, Max: 3 * time.Second, Jitter: -1}
	// Without the outbox, a chat while reconnecting fails at once (TestGoSDKOutbox* cover it).
	cb, eb := sdkDial(t, epWS.url(g.Addr, "/"), bob, timgw.Options{Reconnect: backoff, NoOutbox: true})

	// A chat pushed live stays in bob's inbox until confirmed: the fetch after the
	// reconnection gets it again, and the client must not emit it twice.
	before, err := ca.Chat(ctx, bob, "before the kick")
	if err != nil || before.Code != packet.StatusOK {
		t.Fatalf("chat before the kick: %+v %v", before, err)
	}
	eb.message(t, "before the kick")

	r, err := g.api(t, epHTTP).Post("/api/v1/users/"+url.PathEscape(bob)+"/kick", map[string]string{"reason": "go sdk test"})
	if err != nil || r.Status != 200 {
		t.Fatalf("kick: %v %v", r, err)
	}
	eb.next(t, "Closed", func(ev timgw.Event) bool {
		c, ok := ev.(timgw.Closed)
		return ok && c.WillReconnect && c.Err != nil
	})
	rc := eb.next(t, "Reconnecting", func(ev timgw.Event) bool { _, ok := ev.(timgw.Reconnecting); return ok }).(timgw.Reconnecting)
	if rc.Attempt != 1 || rc.Delay != 3*time.Second {
		t.Fatalf("reconnecting %+v; want attempt 1 after 3s", rc)
	}
	if st := cb.State(); st != timgw.StateReconnecting {
		t.Fatalf("state %v; want reconnecting", st)
	}
	if _, err := cb.Chat(ctx, alice, "while away"); !errors.Is(err, timgw.ErrNotConnected) {
		t.Fatalf("chat while reconnecting: %v; want ErrNotConnected", err)
	}
	// The client sees its socket close before the gateway has unbound the session:
	// wait until bob is offline on the gateway's side too.
	waitPresence(t, g, bob, false)
	var ids []string
	for i := range 2 {
		ack, err := ca.Chat(ctx, bob, fmt.Sprintf("kept %d", i))
		if err != nil || ack.Code != packet.StatusOffline {
			t.Fatalf("chat to bob while he was away: %+v %v; want 10001 (kept)", ack, err)
		}
		ids = append(ids, ack.ID)
	}
	li := eb.next(t, "LoggedIn", func(ev timgw.Event) bool { _, ok := ev.(timgw.LoggedIn); return ok }).(timgw.LoggedIn)
	if !li.Reconnect || li.User.UserID != bob {
		t.Fatalf("login after the kick: %+v", li)
	}
	for i := range 2 {
		m := eb.message(t, fmt.Sprintf("kept %d", i))
		if !m.Offline || m.From != alice || m.ID != ids[i] {
			t.Fatalf("kept chat %d: %+v; want alice's chat %s marked offline", i, m, ids[i])
		}
	}
	// A second fetch finds nothing new.
	if n, err := cb.FetchOffline(ctx); err != nil || n != 0 {
		t.Fatalf("second fetch: %d %v; want 0 new", n, err)
	}
	// The gateway had them confirmed: another device of bob finds an empty inbox.
	other, _ := sdkDial(t, epTCP.url(g.Addr, ""), bob, timgw.Options{NoOfflineFetch: true})
	if n, err := other.FetchOffline(ctx); err != nil || n != 0 {
		t.Fatalf("inbox of another device: %d %v; want empty (confirmed)", n, err)
	}
	// Live chats still arrive on the reconnected client.
	if _, err := ca.Chat(ctx, bob, "live again"); err != nil {
		t.Fatal(err)
	}
	if m := eb.message(t, "live again"); m.Offline {
		t.Fatalf("live chat marked offline: %+v", m)
	}
	// Events come in order: every fetch's are recorded by now. Each chat was emitted once.
	for _, id := range append(ids, before.ID) {
		if n := len(eb.messages(id)); n != 1 {
			t.Fatalf("chat %s emitted %d times; want once", id, n)
		}
	}
}

// TestGoSDKTypingReceiptsConversations: a typing signal, a read receipt and its notice,
// both sides' conversation lists, history and a recall.
func TestGoSDKTypingReceiptsConversations(t *testing.T) {
	g := mainGateway(t)
	ctx := sdkCtx(t)
	alice, bob, ca, cb, ea, eb := sdkPair(t, g, "gt")

	if err := ca.Typing(timgw.Peer(bob), ""); err != nil {
		t.Fatal(err)
	}
	ty := eb.next(t, "Typing", func(ev timgw.Event) bool { _, ok := ev.(timgw.Typing); return ok }).(timgw.Typing)
	if ty.From != alice || ty.To != bob || ty.State != "typing" {
		t.Fatalf("typing: %+v", ty)
	}

	ack, err := ca.Chat(ctx, bob, "read me")
	if err != nil {
		t.Fatal(err)
	}
	eb.message(t, "read me")
	cur, err := cb.Receipt(ctx, timgw.Peer(alice), 0, ack.Seq)
	if err != nil || cur.To != alice || cur.Read != ack.Seq || cur.Delivered != ack.Seq {
		t.Fatalf("receipt: %+v %v; want read and delivered %d (read implies delivered)", cur, err, ack.Seq)
	}
	rc := ea.next(t, "Receipt", func(ev timgw.Event) bool { _, ok := ev.(timgw.Receipt); return ok }).(timgw.Receipt)
	if rc.From != bob || rc.Read != ack.Seq {
		t.Fatalf("alice's receipt event: %+v", rc)
	}

	list, _, err := ca.Conversations(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	conv := findConv(list, bob)
	if conv == nil || conv.Type != "private" || conv.LastSeq != ack.Seq || conv.PeerRead != ack.Seq || conv.Unread != 0 ||
		conv.Last == nil || conv.Last.ID != ack.ID {
		t.Fatalf("alice's conversation with bob: %+v in %+v", conv, list)
	}
	list, _, err = cb.Conversations(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if conv := findConv(list, alice); conv == nil || conv.Read != ack.Seq || conv.Unread != 0 {
		t.Fatalf("bob's conversation with alice: %+v", conv)
	}

	msgs, _, err := cb.History(ctx, timgw.HistoryQuery{Conv: timgw.Peer(alice)})
	if err != nil || len(msgs) != 1 || msgs[0].ID != ack.ID || msgs[0].Content != "read me" {
		t.Fatalf("bob's history with alice: %+v %v", msgs, err)
	}
	rm, err := ca.Recall(ctx, ack.ID, timgw.Peer(bob))
	if err != nil || rm.ID != ack.ID || !rm.Recalled {
		t.Fatalf("recall: %+v %v", rm, err)
	}
	n := eb.next(t, "recall notice", func(ev timgw.Event) bool { n, ok := ev.(timgw.Notice); return ok && n.Kind == "recall" }).(timgw.Notice)
	if n.Message == nil || n.Message.ID != ack.ID {
		t.Fatalf("bob's recall notice: %+v", n)
	}
}

func findConv(list []timgw.Conversation, peer string) *timgw.Conversation {
	for i := range list {
		if list[i].Peer == peer {
			return &list[i]
		}
	}
	return nil
}

// TestGoSDKLoginRefused: a refused first login is an *Error with the gateway's code,
// and the low-level connection of the same package still logs in (the tests' client).
func TestGoSDKLoginRefused(t *testing.T) {
	g := jwtGateway(t)
	ctx := sdkCtx(t)
	_, err := timgw.Dial(ctx, epTCP.url(g.Addr, ""), timgw.Options{Token: "not-a-jwt"})
	var refused *timgw.Error
	if !errors.As(err, &refused) || refused.Code != packet.StatusLoginFailed {
		t.Fatalf("login with a bad token: %v; want an *Error with 10008", err)
	}
	if _, err := timgw.Dial(ctx, epTCP.url(g.Addr, ""), timgw.Options{}); err == nil {
		t.Fatal("Dial without UserID or Token succeeded")
	}
	c := dialURL(t, epTCP.url(g.Addr, ""))
	tok := makeToken(t, jwtSecret, uid("gsj"), time.Now().Add(time.Hour))
	if _, err := c.LoginToken(tok, wait); err != nil {
		t.Fatalf("wire login with a token: %v", err)
	}
	var _ *timclient.Conn = c
}

// sdkSent is the outcome of one Send.
type sdkSent struct {
	ack *timgw.Ack
	err error
}

// sendInOrder sends a chat to peer for each of ids (its id and its content), each from a
// goroutine of its own so that many wait for their answers at once, each taken by the
// client (queued in its outbox, or answered) before the next is sent; before(i), when
// not nil, runs before chat i. It returns every Send's outcome.
func sendInOrder(ctx context.Context, c *timgw.Client, peer string, ids []string, before func(i int)) []sdkSent {
	out := make([]sdkSent, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		if before != nil {
			before(i)
		}
		done := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			out[i].ack, out[i].err = c.Send(ctx, packet.Chat{ID: packet.Str(id), To: packet.Str(peer), Content: id})
		}()
		for !slices.Contains(c.Outbox(), id) {
			select {
			case <-done:
			case <-time.After(50 * time.Microsecond):
				continue
			}
			break
		}
	}
	wg.Wait()
	return out
}

// checkAcks fails t unless every chat was acknowledged (with a code of codes) under its
// id, with seqs rising in send order (the order the gateway stored them), and the
// client's outbox is empty.
func checkAcks(t *testing.T, c *timgw.Client, ids []string, sent []sdkSent, codes ...packet.Status) {
	t.Helper()
	var last int64
	for i, s := range sent {
		if s.err != nil {
			t.Fatalf("chat %d (%s): %v; want an answer", i, ids[i], s.err)
		}
		if !slices.Contains(codes, s.ack.Code) || s.ack.ID != ids[i] || s.ack.Seq <= last {
			t.Fatalf("chat %d: %+v; want code %v, id %s, seq above %d", i, s.ack, codes, ids[i], last)
		}
		last = s.ack.Seq
	}
	if left := c.Outbox(); len(left) != 0 {
		t.Fatalf("outbox after every answer: %v; want empty", left)
	}
}

// waitEachOnce waits until ev has a Message for each of ids, and fails t unless each
// came once; it returns the ids in the order they came.
func waitEachOnce(t *testing.T, ev *sdkEvents, ids []string) []string {
	t.Helper()
	var got []string
	eventually(t, fmt.Sprintf("%d chats received", len(ids)), func() error {
		ev.mu.Lock()
		defer ev.mu.Unlock()
		got = got[:0]
		for _, e := range ev.all {
			if m, ok := e.(timgw.Message); ok && slices.Contains(ids, m.ID) {
				got = append(got, m.ID)
			}
		}
		if len(got) < len(ids) {
			return fmt.Errorf("%d of %d received", len(got), len(ids))
		}
		return nil
	})
	for _, id := range ids {
		if n := len(ev.messages(id)); n != 1 {
			t.Fatalf("chat %s received %d times; want once (received: %v)", id, n, got)
		}
	}
	return got
}

// TestGoSDKOutboxKick: alice sends 40 chats, many waiting for their answers at once; a
// kick through the HTTP API closes her connection after the 20th, and the next ones are
// sent while she reconnects. The outbox writes the unanswered ones again after her
// login, in order, before the new ones: every Send returns its answer once, with seqs in
// send order, and bob gets each chat once, in order.
func TestGoSDKOutboxKick(t *testing.T) {
	t.Parallel()
	g := startTestGateway(t, "outbox-kick", gwConfig{NoHooks: true}) // no rate limit on the burst
	ctx := sdkCtx(t)
	alice, bob := uid("goka"), uid("gokb")
	// The backoff (1 s) leaves the chats after the kick waiting in the outbox.
	backoff := timgw.Backoff{Min: time.Second, Max: time.Second, Jitter: -1}
	ca, ea := sdkDial(t, epWS.url(g.Addr, "/"), alice, timgw.Options{Reconnect: backoff})
	_, eb := sdkDial(t, epTCP.url(g.Addr, ""), bob, timgw.Options{})
	ids := make([]string, 40)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-kick-%02d", alice, i)
	}
	sent := sendInOrder(ctx, ca, bob, ids, func(i int) {
		if i != 20 {
			return
		}
		r, err := g.api(t, epHTTP).Post("/api/v1/users/"+url.PathEscape(alice)+"/kick", map[string]string{"reason": "outbox test"})
		if err != nil || r.Status != 200 {
			t.Errorf("kick: %v %v", r, err)
		}
		ea.next(t, "Closed", func(ev timgw.Event) bool { c, ok := ev.(timgw.Closed); return ok && c.WillReconnect })
		if st := ca.State(); st != timgw.StateReconnecting {
			t.Errorf("alice's state after the kick: %v; want reconnecting", st)
		}
	})
	checkAcks(t, ca, ids, sent, packet.StatusOK)
	if got := waitEachOnce(t, eb, ids); !slices.Equal(got, ids) {
		t.Fatalf("bob received %v; want %v", got, ids)
	}
	ea.next(t, "LoggedIn again", func(ev timgw.Event) bool { li, ok := ev.(timgw.LoggedIn); return ok && li.Reconnect })
}

// relay forwards TCP connections to a backend that can change (a gateway restarted on
// another port) and can cut every connection at once (a lost network).
type relay struct {
	ln      net.Listener
	mu      sync.Mutex
	backend string
	conns   map[net.Conn]bool
}

// newRelay listens on a free port of localhost and forwards to backend; it stops when t ends.
func newRelay(t *testing.T, backend string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, backend: backend, conns: map[net.Conn]bool{}}
	go r.serve()
	t.Cleanup(func() { ln.Close(); r.cut() })
	return r
}

// Addr is the relay's host:port.
func (r *relay) Addr() string { return r.ln.Addr().String() }

// setBackend sends the next connections to addr.
func (r *relay) setBackend(addr string) {
	r.mu.Lock()
	r.backend = addr
	r.mu.Unlock()
}

// cut closes every connection.
func (r *relay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.Close()
	}
	clear(r.conns)
}

func (r *relay) serve() {
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		backend := r.backend
		r.mu.Unlock()
		out, err := net.DialTimeout("tcp", backend, wait)
		if err != nil { // the backend is down: the client sees its connection close
			in.Close()
			continue
		}
		r.mu.Lock()
		r.conns[in], r.conns[out] = true, true
		r.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(out, in)
		go pipe(in, out)
	}
}

// TestGoSDKOutboxRestart: alice sends 40 chats to bob through a relay to a gateway
// with bolt storage; after the 12th the gateway stops (its goodbye answers chats with
// 10034, or they are cut off unanswered), the next ten are sent while it is down, and
// a new gateway on the same data directory takes over. Every Send returns one answer,
// with seqs in send order; bob gets each chat once, and his history has them in order.
func TestGoSDKOutboxRestart(t *testing.T) {
	t.Parallel()
	cfg := storageConfig(t, "shutdown:\n  drain: 0s\n  close_grace: 2s")
	g1 := startStorageGateway(t, "outbox-restart-1", cfg)
	rl := newRelay(t, g1.Addr)
	ctx := sdkCtx(t)
	alice, bob := uid("gora"), uid("gorb")
	backoff := timgw.Backoff{Min: 200 * time.Millisecond, Max: 200 * time.Millisecond, Jitter: -1}
	ca, _ := sdkDial(t, "ws://"+rl.Addr()+"/", alice, timgw.Options{Reconnect: backoff})
	cb, eb := sdkDial(t, "tcp://"+rl.Addr(), bob, timgw.Options{Reconnect: backoff})
	ids := make([]string, 40)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-restart-%02d", alice, i)
	}
	var g2 *gateway
	sent := sendInOrder(ctx, ca, bob, ids, func(i int) {
		switch i {
		case 12:
			stopGateway(t, g1)
		case 22:
			if n := len(ca.Outbox()); n < 10 {
				t.Errorf("alice's outbox while the gateway is down: %d chats; want at least the 10 sent meanwhile", n)
			}
			g2 = startStorageGateway(t, "outbox-restart-2", cfg)
			rl.setBackend(g2.Addr)
		}
	})
	checkAcks(t, ca, ids, sent, packet.StatusOK, packet.StatusOffline)
	waitEachOnce(t, eb, ids)
	// The gateway stored them once, in send order.
	var got []string
	for before := int64(0); ; {
		page, more, err := cb.History(ctx, timgw.HistoryQuery{Conv: timgw.Peer(alice), Count: 100, AfterSeq: before})
		if err != nil {
			t.Fatalf("bob's history: %v", err)
		}
		for _, m := range page {
			if strings.HasPrefix(m.ID, alice+"-restart-") {
				got = append(got, m.ID)
			}
			before = max(before, m.Seq)
		}
		if !more || len(page) == 0 {
			break
		}
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("bob's history: %v; want %v", got, ids)
	}
	_ = g2
}

// TestGoSDKOutboxCut: the network between alice and the gateway is cut while chats
// wait for their answers (some were stored, their answers lost): the resends are
// answered once each (the stored ones as duplicates) and bob gets each once, in order.
func TestGoSDKOutboxCut(t *testing.T) {
	t.Parallel()
	g := startTestGateway(t, "outbox-cut", gwConfig{NoHooks: true}) // no rate limit on the burst
	rl := newRelay(t, g.Addr)
	ctx := sdkCtx(t)
	alice, bob := uid("goca"), uid("gocb")
	backoff := timgw.Backoff{Min: 100 * time.Millisecond, Max: 100 * time.Millisecond, Jitter: -1}
	ca, _ := sdkDial(t, "tcp://"+rl.Addr(), alice, timgw.Options{Reconnect: backoff})
	_, eb := sdkDial(t, epWS.url(g.Addr, "/"), bob, timgw.Options{})
	ids := make([]string, 60)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-cut-%02d", alice, i)
	}
	sent := sendInOrder(ctx, ca, bob, ids, func(i int) {
		if i%20 == 19 {
			rl.cut()
		}
	})
	checkAcks(t, ca, ids, sent, packet.StatusOK)
	if got := waitEachOnce(t, eb, ids); !slices.Equal(got, ids) {
		t.Fatalf("bob received %v; want %v", got, ids)
	}
}

// BenchmarkGoSDKSend measures Send with and without the outbox against a gateway without
// hooks (no rate limit): one Send at a time (a round trip each), and 32 at once. Build
// the gateway without the race detector for numbers that mean something:
//
//	go build -o /tmp/timgw-bench-bin ./cmd/timgw
//	TIMGW_BIN=/tmp/timgw-bench-bin go test -run '^$' -bench GoSDKSend -benchtime 3000x ./integration/
func BenchmarkGoSDKSend(b *testing.B) {
	g, err := startGateway("bench-gosdk", gwConfig{NoHooks: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = g.stop() })
	for _, outbox := range []bool{true, false} {
		for _, par := range []int{1, 32} {
			b.Run(fmt.Sprintf("outbox=%v/parallel=%d", outbox, par), func(b *testing.B) {
				ctx := context.Background()
				from, to := uid("bsa"), uid("bsb")
				c, err := timgw.Dial(ctx, epTCP.url(g.Addr, ""), timgw.Options{UserID: from, NoOutbox: !outbox, NoOfflineFetch: true})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				r, err := timgw.Dial(ctx, epTCP.url(g.Addr, ""), timgw.Options{UserID: to, NoOfflineFetch: true})
				if err != nil {
					b.Fatal(err)
				}
				defer r.Close()
				var next, failed atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for range par {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= int64(b.N) {
							if _, err := c.Chat(ctx, to, "bench"); err != nil {
								failed.Add(1)
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				if n := failed.Load(); n > 0 {
					b.Fatalf("%d of %d chats failed", n, b.N)
				}
			})
		}
	}
}
