package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/timgw/timgw/core/auth"
	"github.com/timgw/timgw/core/packet"
)

func TestLeaveGroup(t *testing.T) {
	r := newRig(auth.Open{})
	a, acl := r.login(t, 1, "alice")
	b, bcl := r.login(t, 2, "bob")
	for _, x := range []struct {
		c  *fakeConn
		cl *client
	}{{a, acl}, {b, bcl}} {
		r.do(x.c, x.cl, packet.CmdJoinGroupReq, `{"groupId":"g1"}`)
	}
	a.take()
	b.take()

	tests := []struct {
		name     string
		body     string
		wantCode packet.Status
		wantMsg  string
	}{
		{"empty group id", `{"groupId":" "}`, packet.StatusInvalidBody, "groupId must not be empty"},
		{"not a member", `{"groupId":"g2"}`, packet.StatusNotGroupMember, "bob is not a member of group g2"},
		{"member leaves", `{"groupId":"g1"}`, packet.StatusOK, ""},
		{"again: no longer a member", `{"groupId":"g1"}`, packet.StatusNotGroupMember, "bob is not a member of group g1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.do(b, bcl, packet.CmdLeaveGroupReq, tt.body)
			got := b.take()
			if len(got) != 1 || got[0].Cmd != packet.CmdLeaveGroupResp {
				t.Fatalf("bob got %v, want one cmd 22", got)
			}
			rep := parse(t, got[0])
			if rep.Code != int(tt.wantCode) || !strings.Contains(rep.Msg, tt.wantMsg) {
				t.Fatalf("answer %+v, want code %d msg %q", rep, tt.wantCode, tt.wantMsg)
			}
		})
	}
	if r.reg.IsMember("g1", "bob") || !r.reg.IsMember("g1", "alice") {
		t.Fatal("membership after the leave is wrong")
	}
	got := a.take()
	if len(got) != 1 || got[0].Cmd != packet.CmdExitGroupNotify || !strings.Contains(string(got[0].Body), `"userId":"bob"`) {
		t.Fatalf("alice got %v, want one cmd 10 about bob", got)
	}
	// bob no longer gets the group's chats.
	r.do(a, acl, packet.CmdChatReq, `{"chatType":1,"groupId":"g1","content":"after"}`)
	a.take()
	if got := b.take(); len(got) != 0 {
		t.Fatalf("bob got %v after leaving", got)
	}
}

func TestTyping(t *testing.T) {
	r := newRig(auth.Open{})
	a, acl := r.login(t, 1, "alice")
	a2, _ := r.login(t, 2, "alice") // alice's second device
	b, bcl := r.login(t, 3, "bob")
	c, _ := r.login(t, 4, "carol")
	r.do(a, acl, packet.CmdJoinGroupReq, `{"groupId":"g1"}`)
	r.do(b, bcl, packet.CmdJoinGroupReq, `{"groupId":"g1"}`)
	for _, x := range []*fakeConn{a, a2, b, c} {
		x.take()
	}

	// Private: the peer and the sender's other devices, with the server's from.
	r.do(a, acl, packet.CmdTypingReq, `{"to":"bob","from":"mallory"}`)
	if got := a.take(); len(got) != 0 {
		t.Fatalf("an accepted signal was answered: %v", got)
	}
	for name, x := range map[string]*fakeConn{"bob": b, "alice's other device": a2} {
		got := x.take()
		if len(got) != 1 || got[0].Cmd != packet.CmdTypingNotify ||
			!strings.Contains(string(got[0].Body), `"from":"alice"`) || !strings.Contains(string(got[0].Body), `"state":"typing"`) {
			t.Fatalf("%s got %v, want one cmd 24 from alice, typing", name, got)
		}
	}
	if got := c.take(); len(got) != 0 {
		t.Fatalf("carol got %v", got)
	}
	// Group: the members but the sending connection.
	r.do(b, bcl, packet.CmdTypingReq, `{"groupId":"g1","state":"paused"}`)
	if got := a.take(); len(got) != 1 || !strings.Contains(string(got[0].Body), `"state":"paused"`) {
		t.Fatalf("alice got %v, want bob's paused signal", got)
	}
	if got := b.take(); len(got) != 0 {
		t.Fatalf("the sending connection got %v", got)
	}

	refused := []struct {
		name string
		body string
		code packet.Status
	}{
		{"no receiver", `{}`, packet.StatusNoReceiver},
		{"both receivers", `{"to":"bob","groupId":"g1"}`, packet.StatusNoReceiver},
		{"not a member", `{"groupId":"g9"}`, packet.StatusNotGroupMember},
		{"long state", `{"to":"bob","state":"` + strings.Repeat("x", 33) + `"}`, packet.StatusInvalidBody},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			r.do(a, acl, packet.CmdTypingReq, tt.body)
			got := a.take()
			if len(got) != 1 || got[0].Cmd != packet.CmdTypingReq || parse(t, got[0]).Code != int(tt.code) {
				t.Fatalf("got %v, want a cmd 23 with %d", got, tt.code)
			}
			if n := b.take(); len(n) != 0 {
				t.Fatalf("a refused signal reached bob: %v", n)
			}
		})
	}
}

func TestTypingRateLimit(t *testing.T) {
	cl := &client{}
	now := time.Unix(1000, 0)
	allowed := 0
	for range 50 { // a burst at one instant
		if cl.typingAllowed(now) {
			allowed++
		}
	}
	if allowed != typingBurst {
		t.Fatalf("a burst let %d through, want %d", allowed, typingBurst)
	}
	if !cl.typingAllowed(now.Add(time.Second / typingRate)) {
		t.Fatal("one refill period later, a signal was refused")
	}
	if cl.typingAllowed(now.Add(time.Second / typingRate)) {
		t.Fatal("a second signal in the same refill period was allowed")
	}
	if !cl.typingAllowed(now.Add(time.Hour)) {
		t.Fatal("after a long pause a signal was refused")
	}
}
