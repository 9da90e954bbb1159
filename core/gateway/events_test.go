package gateway

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/timgw/timgw/core/auth"
	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/session"
	"github.com/timgw/timgw/core/webhook"
)

// fakeEvents records emitted events; it wants every type but those in skip.
type fakeEvents struct {
	mu   sync.Mutex
	evs  []webhook.Event
	skip []string
}

func (f *fakeEvents) Wants(typ string) bool { return !slices.Contains(f.skip, typ) }
func (f *fakeEvents) Emit(e webhook.Event) {
	f.mu.Lock()
	f.evs = append(f.evs, e)
	f.mu.Unlock()
}

// take returns and forgets the events of type typ.
func (f *fakeEvents) take(typ string) []webhook.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out, rest []webhook.Event
	for _, e := range f.evs {
		if e.Type == typ {
			out = append(out, e)
		} else {
			rest = append(rest, e)
		}
	}
	f.evs = rest
	return out
}

// rejectBad is a message hook refusing chats whose content contains "bad".
type rejectBad struct{ hook.Noop }

func (rejectBad) Message(_ context.Context, req *hook.MessageRequest) hook.MessageReply {
	if strings.Contains(req.Chat.Content, "bad") {
		return hook.MessageReply{Action: hook.MessageReject, Code: packet.StatusRateLimited, Reason: "no bad words", Script: "t.lua"}
	}
	return hook.MessageReply{}
}

// eventRig is a gateway whose delivery seam stores every chat (seq 7) when stored is
// set, emitting to a fakeEvents.
func eventRig(stored bool, groupMax int) (*rig, *fakeEvents) {
	reg := session.New()
	local := &router.Local{Registry: reg}
	var d router.Deliverer = local
	if stored {
		d = router.DelivererFunc(func(ctx context.Context, env router.Envelope) (router.Outcome, error) {
			env.Seq = 7
			out, err := local.Deliver(ctx, env)
			out.Stored, out.Seq = true, 7
			return out, err
		})
	}
	ev := &fakeEvents{}
	r := router.New(reg, d, router.Options{MaxContentBytes: 100})
	g := New(Options{Registry: reg, Router: r, Authenticator: auth.Open{}, Hooks: rejectBad{}, Events: ev, EventGroupMax: groupMax})
	return &rig{g: g, reg: reg}, ev
}

func TestMessageOfflineEvents(t *testing.T) {
	tests := []struct {
		name     string
		stored   bool
		groupMax int
		body     string
		want     []string // offline_users; nil: no event
		members  int
	}{
		{"private to an offline user", true, 200, `{"to":"carol","chatType":2,"content":"hi"}`, []string{"carol"}, 0},
		{"private to an online user", true, 200, `{"to":"bob","chatType":2,"content":"hi"}`, nil, 0},
		{"private with storage off", false, 200, `{"to":"carol","chatType":2,"content":"hi"}`, nil, 0},
		{"group lists offline members", true, 200, `{"groupId":"g","chatType":1,"content":"hi"}`, []string{"carol", "dave"}, 4},
		{"group above group_max_members", true, 3, `{"groupId":"g","chatType":1,"content":"hi"}`, []string{}, 4},
		{"group with storage off", false, 200, `{"groupId":"g","chatType":1,"content":"hi"}`, nil, 0},
		{"refused chat", true, 200, `{"to":"carol","chatType":2,"content":"bad"}`, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ev := eventRig(tt.stored, tt.groupMax)
			a, acl := r.login(t, 1, "alice")
			r.login(t, 2, "bob")
			for _, u := range []string{"alice", "bob", "carol", "dave"} {
				r.reg.Join("g", "", u)
			}
			r.do(a, acl, packet.CmdChatReq, tt.body)
			got := ev.take(webhook.TypeMessageOffline)
			if tt.want == nil {
				if len(got) != 0 {
					t.Fatalf("events %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("%d message.offline events, want 1", len(got))
			}
			e := got[0]
			slices.Sort(e.OfflineUsers)
			if !slices.Equal(e.OfflineUsers, tt.want) && !(len(tt.want) == 0 && e.OfflineUsers == nil) {
				t.Errorf("offline_users %v, want %v", e.OfflineUsers, tt.want)
			}
			if e.Members != tt.members || e.Message == nil || e.Message.From != "alice" || e.Message.Seq != 7 ||
				e.Message.ID == "" || e.Message.Content != "hi" || e.Message.CreateTime == 0 {
				t.Errorf("event %+v message %+v", e, e.Message)
			}
		})
	}
}

func TestMessageRefusedEvent(t *testing.T) {
	r, ev := eventRig(true, 200)
	a, acl := r.login(t, 1, "alice")
	r.do(a, acl, packet.CmdChatReq, `{"to":"bob","chatType":2,"content":"a bad one"}`)
	if got := parse(t, a.take()[0]); got.Code != int(packet.StatusRateLimited) {
		t.Fatalf("answer %+v", got)
	}
	got := ev.take(webhook.TypeMessageRefused)
	if len(got) != 1 || got[0].Code != int(packet.StatusRateLimited) || got[0].Reason != "no bad words" ||
		got[0].Message.From != "alice" || got[0].Message.To != "bob" || got[0].Message.Content != "a bad one" {
		t.Fatalf("message.refused events %+v", got)
	}
	if n := len(ev.take(webhook.TypeMessageOffline)); n != 0 {
		t.Errorf("a refused chat emitted %d message.offline events", n)
	}
}

func TestUserPresenceEvents(t *testing.T) {
	r, ev := eventRig(true, 200)
	users := func(typ string) []string {
		var out []string
		for _, e := range ev.take(typ) {
			out = append(out, e.User)
		}
		return out
	}
	c1, cl1 := r.login(t, 1, "alice")
	if got := users(webhook.TypeUserOnline); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("after the first login user.online for %v", got)
	}
	c2, cl2 := r.login(t, 2, "alice")
	if got := users(webhook.TypeUserOnline); len(got) != 0 {
		t.Fatalf("a second connection emitted user.online for %v", got)
	}
	r.g.logout(c1, cl1)
	if got := users(webhook.TypeUserOffline); len(got) != 0 {
		t.Fatalf("closing one of two connections emitted user.offline for %v", got)
	}
	r.g.logout(c2, cl2)
	if got := users(webhook.TypeUserOffline); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("after the last connection closed user.offline for %v", got)
	}
}

func TestUnwantedEventsNotBuilt(t *testing.T) {
	r, ev := eventRig(true, 200)
	ev.skip = webhook.Types
	a, acl := r.login(t, 1, "alice")
	r.do(a, acl, packet.CmdChatReq, `{"to":"carol","chatType":2,"content":"hi"}`)
	r.do(a, acl, packet.CmdChatReq, `{"to":"carol","chatType":2,"content":"bad"}`)
	r.g.logout(a, acl)
	if len(ev.evs) != 0 {
		t.Fatalf("events nobody wants were emitted: %+v", ev.evs)
	}
}
