package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/store"
)

// fakeStorage's receipts: the cursors are the query's; the conversations are fixed.

func (f *fakeStorage) Receipt(_ context.Context, q store.ReceiptQuery) (store.Cursor, error) {
	f.receipts = append(f.receipts, q)
	return store.Cursor{Delivered: max(q.Delivered, q.Read), Read: q.Read}, f.err
}

func (f *fakeStorage) Conversations(_ context.Context, q store.ConversationsQuery) (store.ConversationsPage, error) {
	f.convQueries = append(f.convQueries, q)
	return store.ConversationsPage{Next: 77, Conversations: []store.Conversation{
		{Group: "g1", Last: packet.Chat{ID: "m9", GroupID: "g1", Seq: 9}, LastTime: 90, Unread: 2, Mine: store.Cursor{Delivered: 7, Read: 7}},
		{Peer: "bob", Last: packet.Chat{ID: "m3", From: "bob", To: "alice", Seq: 3}, LastTime: 80, Unread: 1,
			Mine: store.Cursor{Delivered: 3, Read: 2}, PeerCursor: store.Cursor{Delivered: 3, Read: 3}},
	}}, f.err
}

func TestReceipt(t *testing.T) {
	fs := &fakeStorage{}
	r := storageRig(fs)
	a, acl := r.login(t, 1, "alice")
	a2, _ := r.login(t, 2, "alice") // alice's second device
	b, bcl := r.login(t, 3, "bob")
	c, ccl := r.login(t, 4, "carol")
	r.do(a, acl, packet.CmdJoinGroupReq, `{"groupId":"g1"}`)
	r.do(c, ccl, packet.CmdJoinGroupReq, `{"groupId":"g1"}`)
	for _, x := range []*fakeConn{a, a2, b, c} {
		x.take()
	}

	tests := []struct {
		name string
		body string
		code packet.Status
		// who gets cmd 27 (besides the answer to the reader)
		notified []*fakeConn
		want     string // in the answer's and the notices' body
	}{
		{"private read", `{"to":"alice","read":"5"}`, packet.StatusOK, []*fakeConn{a, a2}, `"delivered":5,"read":5`},
		{"private delivered", `{"to":"alice","delivered":4}`, packet.StatusOK, []*fakeConn{a, a2}, `"delivered":4,"read":0`},
		{"no conversation", `{"read":1}`, packet.StatusNoReceiver, nil, "needs to"},
		{"two conversations", `{"to":"alice","groupId":"g1","read":1}`, packet.StatusNoReceiver, nil, "give one"},
		{"not a member", `{"groupId":"g1","read":1}`, packet.StatusNotGroupMember, nil, "not a member"},
		{"no seq", `{"to":"alice"}`, packet.StatusInvalidBody, nil, "delivered or read"},
		{"negative", `{"to":"alice","read":-1}`, packet.StatusInvalidBody, nil, "negative"},
		{"bad body", `{"to":"alice","read":"x"}`, packet.StatusInvalidBody, nil, "not an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.do(b, bcl, packet.CmdReceiptReq, tt.body)
			got := b.take()
			if len(got) != 1 || got[0].Cmd != packet.CmdReceiptResp {
				t.Fatalf("bob got %v, want one cmd 26", got)
			}
			rep := parse(t, got[0])
			if rep.Code != int(tt.code) || !strings.Contains(string(got[0].Body), tt.want) {
				t.Fatalf("answer %s, want code %d with %s", got[0].Body, tt.code, tt.want)
			}
			for _, x := range []*fakeConn{a, a2, c} {
				n := x.take()
				wanted := false
				for _, w := range tt.notified {
					wanted = wanted || w == x
				}
				if !wanted {
					if len(n) != 0 {
						t.Fatalf("conn %d got %v", x.id, n)
					}
					continue
				}
				if len(n) != 1 || n[0].Cmd != packet.CmdReceiptNotify || !strings.Contains(string(n[0].Body), `"from":"bob"`) ||
					!strings.Contains(string(n[0].Body), tt.want) {
					t.Fatalf("conn %d got %v, want one cmd 27 from bob with %s", x.id, n, tt.want)
				}
			}
		})
	}
	if q := fs.receipts[0]; q.User != "bob" || q.Peer != "alice" || q.Read != 5 {
		t.Errorf("first query %+v", q)
	}
	// A group receipt: the members (within notice_max_members) but the reading connection.
	r.do(a, acl, packet.CmdReceiptReq, `{"groupId":"g1","read":3}`)
	if got := a.take(); len(got) != 1 || parse(t, got[0]).Code != int(packet.StatusOK) {
		t.Fatalf("alice got %v", got)
	}
	for name, x := range map[string]*fakeConn{"carol": c, "alice's other device": a2} {
		if got := x.take(); len(got) != 1 || got[0].Cmd != packet.CmdReceiptNotify || !strings.Contains(string(got[0].Body), `"groupId":"g1"`) {
			t.Fatalf("%s got %v, want cmd 27 of g1", name, got)
		}
	}
	r.g.SetNoticeMaxMembers(1) // a large group: only the reader's other devices
	r.do(a, acl, packet.CmdReceiptReq, `{"groupId":"g1","read":4}`)
	a.take()
	if got := c.take(); len(got) != 0 {
		t.Fatalf("carol got %v above notice_max_members", got)
	}
	if got := a2.take(); len(got) != 1 {
		t.Fatalf("alice's other device got %v, want the receipt", got)
	}
	// Storage off.
	r.g.store = store.Off{}
	r.do(b, bcl, packet.CmdReceiptReq, `{"to":"alice","read":1}`)
	if got := b.take(); len(got) != 1 || parse(t, got[0]).Code != int(packet.StatusPersistenceOff) {
		t.Fatalf("storage off: %v, want 10022", got)
	}
}

func TestConversations(t *testing.T) {
	fs := &fakeStorage{}
	r := storageRig(fs)
	a, acl := r.login(t, 1, "alice")
	r.do(a, acl, packet.CmdJoinGroupReq, `{"groupId":"g1","name":"Team"}`)
	a.take()
	r.do(a, acl, packet.CmdConversationsReq, `{"limit":"2","before":100}`)
	got := a.take()
	if len(got) != 1 || got[0].Cmd != packet.CmdConversationsResp || parse(t, got[0]).Code != int(packet.StatusOK) {
		t.Fatalf("got %v, want one cmd 29 with 10000", got)
	}
	if q := fs.convQueries[0]; q.User != "alice" || q.Count != 2 || q.Before != 100 || len(q.Groups) != 1 || q.Groups[0] != "g1" {
		t.Errorf("query %+v", q)
	}
	var body struct {
		Data struct {
			Conversations []map[string]any `json:"conversations"`
			Next          int64            `json:"next"`
		} `json:"data"`
	}
	if err := json.Unmarshal(got[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	cs := body.Data.Conversations
	if len(cs) != 2 || body.Data.Next != 77 {
		t.Fatalf("data %s", got[0].Body)
	}
	if g := cs[0]; g["type"] != "group" || g["groupId"] != "g1" || g["name"] != "Team" || g["lastSeq"] != 9.0 || g["unread"] != 2.0 || g["peerRead"] != nil {
		t.Errorf("group entry %v", g)
	}
	if p := cs[1]; p["type"] != "private" || p["peer"] != "bob" || p["read"] != 2.0 || p["peerRead"] != 3.0 || p["peerDelivered"] != 3.0 {
		t.Errorf("private entry %v", p)
	}
	for _, tt := range []struct {
		name, body string
		code       packet.Status
	}{
		{"negative limit", `{"limit":-1}`, packet.StatusInvalidBody},
		{"bad body", `{"limit":"many"}`, packet.StatusInvalidBody},
	} {
		r.do(a, acl, packet.CmdConversationsReq, tt.body)
		if got := a.take(); len(got) != 1 || got[0].Cmd != packet.CmdConversationsResp || parse(t, got[0]).Code != int(tt.code) {
			t.Errorf("%s: got %v, want cmd 29 with %d", tt.name, got, tt.code)
		}
	}
}
