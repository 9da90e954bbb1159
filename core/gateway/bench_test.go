package gateway

import (
	"context"
	"strings"
	"testing"

	"github.com/timgw/timgw/core/auth"
	"github.com/timgw/timgw/core/packet"
)

// sinkConn is a logged-in connection that takes every packet and keeps nothing, so that
// a benchmark counts only what the command layer allocates.
type sinkConn struct {
	fakeConn
	n int
}

func (c *sinkConn) Send(packet.Packet) error { c.n++; return nil }

// BenchmarkChatPrivate handles a cmd 11 private chat from a logged-in connection to an
// online receiver, storage off and no hooks: decode, route, the delivered cmd 11 and the
// sender's cmd 12. Allocations per chat are the number to watch (issue 12 item 4).
func BenchmarkChatPrivate(b *testing.B) {
	r := newRig(auth.Open{})
	r.g.router.SetMaxContentBytes(4096)
	from, to := &sinkConn{fakeConn: fakeConn{id: 1}}, &sinkConn{fakeConn: fakeConn{id: 2}}
	fromCl, toCl := &client{}, &client{}
	r.g.handle(context.Background(), from, fromCl, packet.Packet{Cmd: packet.CmdLoginReq, Body: []byte(`{"userId":"u_s1"}`)})
	r.g.handle(context.Background(), to, toCl, packet.Packet{Cmd: packet.CmdLoginReq, Body: []byte(`{"userId":"u_r1"}`)})
	if fromCl.userID == "" || toCl.userID == "" {
		b.Fatal("login failed")
	}
	body := []byte(`{"cmd":11,"chatType":2,"msgType":0,"to":"u_r1","content":"t=1234567890123 ` + strings.Repeat("x", 46) + `"}`)
	ctx := context.Background()
	from.n, to.n = 0, 0
	b.ReportAllocs()
	for b.Loop() {
		r.g.handle(ctx, from, fromCl, packet.Packet{Cmd: packet.CmdChatReq, Body: body})
	}
	if to.n != from.n || to.n == 0 {
		b.Fatalf("receiver got %d chats, sender %d answers", to.n, from.n)
	}
}
