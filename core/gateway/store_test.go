package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/timgw/timgw/core/auth"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/store"
)

// fakeStorage records the storage calls of the command layer.
type fakeStorage struct {
	offline  []store.OfflineQuery
	history  []store.HistoryQuery
	recalls  []store.RecallQuery
	joins    []string
	leaves   []string
	users    []string
	err      error
	recalled bool
	// receipts.go
	receipts    []store.ReceiptQuery
	convQueries []store.ConversationsQuery
}

func (f *fakeStorage) Offline(_ context.Context, q store.OfflineQuery) (store.OfflinePage, error) {
	f.offline = append(f.offline, q)
	return store.OfflinePage{Cursor: 9, Messages: []store.Entry{
		{Chat: packet.Chat{ID: "1", From: "alice", To: "bob", Seq: 1}, Peer: "alice"},
		{Chat: packet.Chat{ID: "2", From: "carol", GroupID: "room", Seq: 4}, Group: "room"},
	}}, f.err
}

func (f *fakeStorage) History(_ context.Context, q store.HistoryQuery) (store.HistoryPage, error) {
	f.history = append(f.history, q)
	return store.HistoryPage{More: true}, f.err
}

func (f *fakeStorage) Recall(_ context.Context, q store.RecallQuery) (packet.Chat, bool, error) {
	f.recalls = append(f.recalls, q)
	return packet.Chat{ID: packet.Str(q.ID), Cmd: 16, Recalled: true, Seq: 5}, f.recalled, f.err
}

func (f *fakeStorage) Join(_ context.Context, group, _ string, members ...string) error {
	f.joins = append(f.joins, group+":"+members[0])
	return nil
}

func (f *fakeStorage) Leave(_ context.Context, group, member string) error {
	f.leaves = append(f.leaves, group+":"+member)
	return nil
}

func (f *fakeStorage) RememberUser(_ context.Context, id, _, _ string) error {
	f.users = append(f.users, id)
	return nil
}

func storageRig(fs *fakeStorage) *rig {
	r := newRig(auth.Open{})
	r.g.store = fs
	return r
}

func TestGetMessages(t *testing.T) {
	tests := []struct {
		name string
		body string
		code packet.Status
		// checks on the recorded query
		check func(t *testing.T, fs *fakeStorage)
	}{
		{"offline", `{"type":0,"count":"20","ack":7}`, packet.StatusGetOfflineMsgOK, func(t *testing.T, fs *fakeStorage) {
			if q := fs.offline[0]; q.User != "bob" || q.Ack != 7 || q.Count != 20 {
				t.Errorf("query %+v", q)
			}
		}},
		{"offline of one peer", `{"userId":"bob","type":0,"fromUserId":"alice"}`, packet.StatusGetOfflineMsgOK, func(t *testing.T, fs *fakeStorage) {
			if q := fs.offline[0]; q.Peer != "alice" {
				t.Errorf("query %+v", q)
			}
		}},
		{"someone else's", `{"userId":"alice","type":0}`, packet.StatusForbidden, nil},
		{"history", `{"type":1,"fromUserId":"alice","afterSeq":3,"beforeSeq":9,"reverse":true,"offset":1}`, packet.StatusGetHistoryOK,
			func(t *testing.T, fs *fakeStorage) {
				if q := fs.history[0]; q.User != "bob" || q.Peer != "alice" || q.AfterSeq != 3 || q.BeforeSeq != 9 || !q.Reverse || q.Offset != 1 {
					t.Errorf("query %+v", q)
				}
			}},
		{"history of a group", `{"type":1,"groupId":"room"}`, packet.StatusGetHistoryOK, nil},
		{"history of a group bob is not in", `{"type":1,"groupId":"other"}`, packet.StatusNotGroupMember, nil},
		{"history without conversation", `{"type":1}`, packet.StatusGetMessageFailed, nil},
		{"peer and group", `{"type":1,"groupId":"room","fromUserId":"alice"}`, packet.StatusGetMessageFailed, nil},
		{"bad type", `{"type":5}`, packet.StatusGetMessageFailed, nil},
		{"bad body", `{"type":[]}`, packet.StatusInvalidBody, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := &fakeStorage{}
			r := storageRig(fs)
			c, cl := r.login(t, 1, "bob")
			r.reg.Join("room", "", "bob")
			r.do(c, cl, packet.CmdGetMessageReq, tc.body)
			got := parse(t, c.take()[0])
			if got.Code != int(tc.code) {
				t.Fatalf("code %d (%s), want %d", got.Code, got.Msg, tc.code)
			}
			if tc.check != nil {
				tc.check(t, fs)
			}
		})
	}
}

func TestGetMessagesPage(t *testing.T) {
	fs := &fakeStorage{}
	r := storageRig(fs)
	c, cl := r.login(t, 1, "bob")
	r.do(c, cl, packet.CmdGetMessageReq, `{"type":0}`)
	got := parse(t, c.take()[0])
	var page struct {
		UserID  string                   `json:"userId"`
		Friends map[string][]packet.Chat `json:"friends"`
		Groups  map[string][]packet.Chat `json:"groups"`
		Cursor  int64                    `json:"cursor"`
	}
	if err := json.Unmarshal(got.Data, &page); err != nil {
		t.Fatal(err)
	}
	if page.UserID != "bob" || page.Cursor != 9 || len(page.Friends["alice"]) != 1 || len(page.Groups["room"]) != 1 {
		t.Errorf("page %s", got.Data)
	}
	fs.err = errors.Join(errors.New("down"), store.ErrUnavailable)
	r.do(c, cl, packet.CmdGetMessageReq, `{"type":0}`)
	if got := parse(t, c.take()[0]); got.Code != int(packet.StatusStorageUnavailable) {
		t.Errorf("storage down: code %d, want 10030", got.Code)
	}
}

func TestRecallCommand(t *testing.T) {
	fs := &fakeStorage{}
	r := storageRig(fs)
	alice, acl := r.login(t, 1, "alice")
	alice2, _ := r.login(t, 2, "alice")
	bob, _ := r.login(t, 3, "bob")
	r.reg.Join("room", "", "alice")
	r.reg.Join("room", "", "bob")

	r.do(alice, acl, packet.CmdCancelMsgReq, `{"id":"m1","to":"bob"}`)
	if got := parse(t, alice.take()[0]); got.Code != int(packet.StatusOK) || got.Cmd != int(packet.CmdCancelMsgResp) {
		t.Fatalf("recall answer %+v", got)
	}
	if q := fs.recalls[0]; q.From != "alice" || q.By != "alice" || q.Peer != "bob" || q.Admin || len(q.Receivers) != 1 || q.Receivers[0] != "bob" {
		t.Errorf("recall query %+v", q)
	}
	for name, c := range map[string]*fakeConn{"bob": bob, "alice's other device": alice2} {
		if ps := c.take(); len(ps) != 1 || ps[0].Cmd != packet.CmdCancelMsgResp {
			t.Errorf("%s got %v, want one cmd 16 notice", name, ps)
		}
	}
	r.do(alice, acl, packet.CmdCancelMsgReq, `{"id":"m2","groupId":"room"}`)
	alice.take()
	if q := fs.recalls[1]; q.Group != "room" || len(q.Receivers) != 1 || q.Receivers[0] != "bob" {
		t.Errorf("group recall query %+v", q)
	}
	for _, tc := range []struct {
		body string
		err  error
		code packet.Status
	}{
		{`{"id":"m1"}`, nil, packet.StatusInvalidBody},
		{`{"to":"bob"}`, nil, packet.StatusInvalidBody},
		{`{"id":"m1","to":"bob"}`, store.ErrNotFound, packet.StatusNotFound},
		{`{"id":"m1","to":"bob"}`, store.ErrRecallWindow, packet.StatusRecallWindowExpired},
		{`{"id":"m1","to":"bob"}`, store.ErrUnavailable, packet.StatusStorageUnavailable},
	} {
		fs.err = tc.err
		r.do(alice, acl, packet.CmdCancelMsgReq, tc.body)
		if got := parse(t, alice.take()[0]); got.Code != int(tc.code) {
			t.Errorf("%s with %v: code %d, want %d", tc.body, tc.err, got.Code, tc.code)
		}
	}
	fs.err = nil
	if resp := r.g.Recall(context.Background(), "alice", "m9", "bob", "", "admin"); resp.Code != packet.StatusOK {
		t.Errorf("admin recall: %+v", resp)
	}
	if q := fs.recalls[len(fs.recalls)-1]; !q.Admin || q.By != "admin" || q.From != "alice" {
		t.Errorf("admin recall query %+v", q)
	}
}

func TestPersistenceOff(t *testing.T) {
	r := newRig(auth.Open{})
	c, cl := r.login(t, 1, "bob")
	for _, cmd := range []packet.Cmd{packet.CmdGetMessageReq, packet.CmdCancelMsgReq} {
		r.do(c, cl, cmd, `{"type":0,"id":"x","to":"y"}`)
		if got := parse(t, c.take()[0]); got.Code != int(packet.StatusPersistenceOff) {
			t.Errorf("cmd %d without storage: code %d, want 10022", cmd, got.Code)
		}
	}
}

func TestLoginAndJoinRemembered(t *testing.T) {
	fs := &fakeStorage{}
	r := storageRig(fs)
	c, cl := r.login(t, 1, "bob")
	r.login(t, 2, "bob") // known now: not stored again
	r.do(c, cl, packet.CmdJoinGroupReq, `{"groupId":"room"}`)
	r.do(c, cl, packet.CmdJoinGroupReq, `{"groupId":"room"}`)
	if len(fs.users) != 1 || fs.users[0] != "bob" {
		t.Errorf("users remembered %v, want [bob]", fs.users)
	}
	if len(fs.joins) != 1 || fs.joins[0] != "room:bob" {
		t.Errorf("joins remembered %v, want [room:bob]", fs.joins)
	}
}
