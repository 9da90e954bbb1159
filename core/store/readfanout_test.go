package store

import (
	"context"
	"slices"
	"testing"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
)

func groupEnv(from, group, id string, receivers ...string) router.Envelope {
	return router.Envelope{Kind: router.KindChat, Chat: &packet.Chat{ID: packet.Str(id), From: packet.Str(from),
		Cmd: packet.Int(packet.CmdChatReq), CreateTime: 1000, ChatType: packet.ChatTypeGroup, GroupID: packet.Str(group),
		Content: "to " + group}, Receivers: receivers}
}

// rfConn is a store connection whose plugin declares read fan-out (or not).
type rfConn struct {
	conn
	rf bool
}

func (c rfConn) ReadFanout() bool { return c.rf }

// TestAppendRequestReadFanout: which chats go by read fan-out (a group chat to more
// receivers than the threshold, the sender not counted), and what a plugin with and
// without read fan-out is sent.
func TestAppendRequestReadFanout(t *testing.T) {
	cases := []struct {
		name      string
		env       router.Envelope
		threshold int
		rf        bool     // a read fan-out variant exists
		receivers []string // sent to a plugin without read fan-out
	}{
		{"off", groupEnv("a", "g", "1", "a", "b", "c", "d"), 0, false, []string{"b", "c", "d"}},
		{"small group", groupEnv("a", "g", "2", "a", "b", "c"), 2, false, []string{"b", "c"}},
		{"sender not counted", groupEnv("a", "g", "3", "b", "a", "c"), 2, false, []string{"b", "c"}},
		{"large group", groupEnv("a", "g", "4", "a", "b", "c", "d"), 2, true, []string{"b", "c", "d"}},
		{"sender not a receiver", groupEnv("a", "g", "5", "b", "c", "d"), 2, true, []string{"b", "c", "d"}},
		{"private chats never", privateEnv("a", "b", "6", "x"), 0, false, []string{"b"}},
		{"private chats never, threshold 1", func() router.Envelope {
			e := privateEnv("a", "b", "7", "x")
			e.Receivers = []string{"b", "b2", "b3"}
			return e
		}(), 1, false, []string{"b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := appendRequest(tc.env, tc.threshold)
			if err != nil {
				t.Fatal(err)
			}
			if got := req.readFanout != nil; got != tc.rf {
				t.Fatalf("read fan-out variant: %v, want %v", got, tc.rf)
			}
			if tc.rf {
				r := req.For(rfConn{rf: true})
				if !r.Message.ReadFanout || len(r.Receivers) != 0 || r.Message.Conv != "g:g" || r.Message.Id != string(tc.env.Chat.ID) {
					t.Errorf("to a read fan-out plugin: %v, want flagged, no receivers", r)
				}
				if req.Message.ReadFanout {
					t.Errorf("the write fan-out request is flagged too")
				}
			}
			for _, c := range []conn{rfConn{rf: false}, hangingConn{}} { // says no; says nothing
				r := req.For(c)
				if r.Message.ReadFanout || !slices.Equal(r.Receivers, tc.receivers) {
					t.Errorf("to a plugin without read fan-out (%T): flagged %v, receivers %v, want %v", c, r.Message.ReadFanout, r.Receivers, tc.receivers)
				}
			}
		})
	}
}

// TestDelivererReadFanout: with a small threshold, a group chat is stored once by the
// bolt plugin (which declares read fan-out) and each member other than the sender gets
// it from its offline query, with the usual confirmation; a member who joined later
// does not; SetReadFanoutMembers(0) goes back to write fan-out.
func TestDelivererReadFanout(t *testing.T) {
	sup := startBolt(t, t.TempDir(), func(c *config.Storage) { c.ReadFanoutMembers = 2 })
	svc := NewService(sup)
	ctx := context.Background()
	d := NewDeliverer(sup, &deliveries{})
	if err := svc.Join(ctx, "big", "", "alice", "bob", "carol", "dave"); err != nil {
		t.Fatal(err)
	}
	members := []string{"alice", "bob", "carol", "dave"}
	out, err := d.Deliver(ctx, groupEnv("alice", "big", "g1", members...))
	if err != nil || out.Seq != 1 {
		t.Fatalf("deliver: %+v, %v", out, err)
	}
	if err := svc.Join(ctx, "big", "", "erin"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Deliver(ctx, groupEnv("bob", "big", "g2", append(members, "erin")...)); err != nil {
		t.Fatal(err)
	}
	d.SetReadFanoutMembers(0)
	if _, err := d.Deliver(ctx, groupEnv("carol", "big", "g3", append(members, "erin")...)); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"alice": {"g2", "g3"}, "bob": {"g1", "g3"}, "carol": {"g1", "g2"}, "dave": {"g1", "g2", "g3"}, "erin": {"g2", "g3"}}
	for user, ids := range want {
		page, err := svc.Offline(ctx, OfflineQuery{User: user})
		if err != nil {
			t.Fatalf("%s's offline: %v", user, err)
		}
		var got []string
		for _, e := range page.Messages {
			got = append(got, string(e.Chat.ID))
			if e.Group != "big" {
				t.Errorf("%s's entry %+v: group %q", user, e, e.Group)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, ids) {
			t.Errorf("%s's offline: %v, want %v", user, got, ids)
		}
		after, err := svc.Offline(ctx, OfflineQuery{User: user, Ack: page.Cursor})
		if err != nil || len(after.Messages) != 0 || after.Confirmed != int64(len(ids)) {
			t.Errorf("%s's offline after ack: %+v, %v; want empty, %d confirmed", user, after, err, len(ids))
		}
	}
	h, err := svc.History(ctx, HistoryQuery{User: "dave", Group: "big"})
	if err != nil || len(h.Messages) != 3 {
		t.Errorf("history: %+v, %v; want 3 chats", h, err)
	}
}
