package storagetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Receipts (delivered and read cursors) and conversation lists.

func setCursor(t *testing.T, b storage.Backend, user, conv string, delivered, read int64) *pb.SetCursorResponse {
	t.Helper()
	res, err := b.SetCursor(ctx(t), &pb.SetCursorRequest{User: user, Conv: conv, Delivered: delivered, Read: read})
	if err != nil {
		t.Fatalf("SetCursor(%s, %s, %d, %d): %v", user, conv, delivered, read, err)
	}
	return res
}

func conversations(t *testing.T, b storage.Backend, req *pb.ConversationsRequest) *pb.ConversationsResponse {
	t.Helper()
	res, err := b.Conversations(ctx(t), req)
	if err != nil {
		t.Fatalf("Conversations(%v): %v", req, err)
	}
	return res
}

// testCursorRaise: cursors only go up, read implies delivered, Cursors reads them back,
// and a malformed request is ErrInvalid.
func testCursorRaise(t *testing.T, open Opener) {
	b := fresh(t, open)
	conv := storage.PrivateConv("alice", "bob")
	steps := []struct {
		name            string
		delivered, read int64
		want            [2]int64 // delivered, read after the step
	}{
		{"delivered", 3, 0, [2]int64{3, 0}},
		{"lower delivered is ignored", 2, 0, [2]int64{3, 0}},
		{"read", 0, 2, [2]int64{3, 2}},
		{"read implies delivered", 0, 5, [2]int64{5, 5}},
		{"lower read is ignored", 1, 1, [2]int64{5, 5}},
		{"both", 9, 7, [2]int64{9, 7}},
		{"nothing", 0, 0, [2]int64{9, 7}},
	}
	for _, st := range steps {
		res := setCursor(t, b, "bob", conv, st.delivered, st.read)
		if c := res.Cursor; c.GetConv() != conv || c.GetDelivered() != st.want[0] || c.GetRead() != st.want[1] {
			t.Errorf("%s: cursor %v, want delivered %d read %d", st.name, c, st.want[0], st.want[1])
		}
	}
	other := storage.GroupConv("room")
	setCursor(t, b, "bob", other, 4, 0)
	setCursor(t, b, "alice", conv, 1, 1) // another user's cursors are separate
	res, err := b.Cursors(ctx(t), &pb.CursorsRequest{User: "bob", Convs: []string{conv, other, storage.GroupConv("none")}})
	if err != nil {
		t.Fatalf("Cursors: %v", err)
	}
	got := map[string][2]int64{}
	for _, c := range res.Cursors {
		got[c.Conv] = [2]int64{c.Delivered, c.Read}
	}
	want := map[string][2]int64{conv: {9, 7}, other: {4, 0}}
	if len(got) != len(want) || got[conv] != want[conv] || got[other] != want[other] {
		t.Errorf("Cursors of bob: %v, want %v", got, want)
	}
	for _, bad := range []*pb.SetCursorRequest{
		{User: "", Conv: conv, Read: 1},
		{User: "bob", Conv: "", Read: 1},
		{User: "bob", Conv: conv, Read: -1},
	} {
		if _, err := b.SetCursor(ctx(t), bad); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("SetCursor(%v): %v, want ErrInvalid", bad, err)
		}
	}
}

// testCursorInbox: a delivered cursor removes the user's inbox entries of that
// conversation up to it, and nothing else.
func testCursorInbox(t *testing.T, open Opener) {
	b := fresh(t, open)
	ab := storage.PrivateConv("alice", "bob")
	for i := 1; i <= 4; i++ {
		mustAppend(t, b, chat("alice", "bob", fmt.Sprint("a", i), "x", int64(i)))
	}
	mustAppend(t, b, chat("carol", "bob", "c1", "x", 10), groupChat("dave", "room", "g1", "bob"))
	res := setCursor(t, b, "bob", ab, 2, 0)
	if res.Removed != 2 {
		t.Errorf("delivered up to 2 removed %d entries, want 2", res.Removed)
	}
	left := inbox(t, b, &pb.InboxRequest{User: "bob"})
	var got []string
	for _, e := range left.Entries {
		got = append(got, e.Message.Id)
	}
	if want := []string{"a3", "a4", "c1", "g1"}; !slices.Equal(got, want) {
		t.Errorf("bob's inbox after delivered 2 of alice's: %v, want %v", got, want)
	}
	if res := setCursor(t, b, "bob", ab, 1, 0); res.Removed != 0 || res.Cursor.Delivered != 2 {
		t.Errorf("a lower delivered: %v, want nothing removed and delivered 2", res)
	}
	// read implies delivered: a read receipt clears the rest.
	if res := setCursor(t, b, "bob", ab, 0, 4); res.Removed != 2 {
		t.Errorf("read up to 4 removed %d entries, want 2", res.Removed)
	}
	if res := setCursor(t, b, "bob", storage.GroupConv("room"), 1, 0); res.Removed != 1 {
		t.Errorf("delivered of the group removed %d, want 1", res.Removed)
	}
	left = inbox(t, b, &pb.InboxRequest{User: "bob"})
	if len(left.Entries) != 1 || left.Entries[0].Message.Id != "c1" {
		t.Errorf("bob's inbox: %v, want only c1", left.Entries)
	}
	// New entries keep increasing cursors, and the old confirmation still works.
	mustAppend(t, b, chat("alice", "bob", "a5", "x", 5))
	left = inbox(t, b, &pb.InboxRequest{User: "bob"})
	if len(left.Entries) != 2 || left.Entries[1].Message.Id != "a5" || left.Entries[1].Cursor <= left.Entries[0].Cursor {
		t.Fatalf("bob's inbox after a new chat: %v, want c1 then a5", left.Entries)
	}
	if r, err := b.Confirm(ctx(t), &pb.ConfirmRequest{User: "bob", Cursor: left.Entries[1].Cursor}); err != nil || r.Removed != 2 {
		t.Errorf("Confirm after receipts: %v, %v; want 2 removed", r, err)
	}
	if h := history(t, b, &pb.HistoryRequest{Conv: ab}); len(h.Messages) != 5 {
		t.Errorf("receipts removed history: %d messages of 5", len(h.Messages))
	}
}

// testCursorSender: Append raises the sender's own cursors to the chat's seq.
func testCursorSender(t *testing.T, open Opener) {
	b := fresh(t, open)
	ab := storage.PrivateConv("alice", "bob")
	mustAppend(t, b, chat("bob", "alice", "b1", "x", 1), chat("alice", "bob", "a1", "x", 2), chat("alice", "bob", "a2", "x", 3))
	mustAppend(t, b, groupChat("alice", "room", "g1", "bob"))
	res, err := b.Cursors(ctx(t), &pb.CursorsRequest{User: "alice", Convs: []string{ab, storage.GroupConv("room")}})
	if err != nil {
		t.Fatalf("Cursors: %v", err)
	}
	got := map[string][2]int64{}
	for _, c := range res.Cursors {
		got[c.Conv] = [2]int64{c.Delivered, c.Read}
	}
	if got[ab] != [2]int64{3, 3} || got[storage.GroupConv("room")] != [2]int64{1, 1} {
		t.Errorf("alice's cursors after sending: %v, want %s 3/3 and the group 1/1", got, ab)
	}
	bob, err := b.Cursors(ctx(t), &pb.CursorsRequest{User: "bob", Convs: []string{ab}})
	if err != nil || len(bob.Cursors) != 1 || bob.Cursors[0].Read != 1 {
		t.Errorf("bob's cursors: %v, %v; want read 1 (his own chat)", bob, err)
	}
	// A lower seq does not lower what a receipt raised.
	setCursor(t, b, "bob", ab, 0, 3)
	mustAppend(t, b, chat("bob", "alice", "b1", "resent", 1)) // a duplicate: no change
	bob, _ = b.Cursors(ctx(t), &pb.CursorsRequest{User: "bob", Convs: []string{ab}})
	if len(bob.Cursors) != 1 || bob.Cursors[0].Read != 3 {
		t.Errorf("bob's cursors after a resend: %v, want read 3", bob)
	}
}

// testConversations: a user's private and group conversations, newest first, paged, with
// the last chat, both sides' cursors and unread counts.
func testConversations(t *testing.T, open Opener) {
	name := newName()
	b := open(t, name)
	ab, ac, room := storage.PrivateConv("alice", "bob"), storage.PrivateConv("alice", "carol"), storage.GroupConv("room")
	mustAppend(t, b, chat("bob", "alice", "b1", "hi", 100), chat("bob", "alice", "b2", "there", 110)) // server 101, 111
	mustAppend(t, b, chat("carol", "alice", "c1", "yo", 120))                                         // 121
	g := groupChat("dave", "room", "g1", "alice", "bob")
	g.Message.ServerTime = 131
	mustAppend(t, b, g)
	mustAppend(t, b, chat("bob", "carol", "x1", "not alice's", 140)) // another pair
	g2 := groupChat("dave", "other", "o1", "erin")
	g2.Message.ServerTime = 151
	mustAppend(t, b, g2) // a group alice is not in

	list := conversations(t, b, &pb.ConversationsRequest{User: "alice", Groups: []string{"room", "empty"}})
	var order []string
	for _, c := range list.Conversations {
		order = append(order, c.Conv)
	}
	if want := []string{room, ac, ab}; !slices.Equal(order, want) || list.More {
		t.Fatalf("alice's conversations: %v (more %v), want %v", order, list.More, want)
	}
	byConv := map[string]*pb.Conversation{}
	for _, c := range list.Conversations {
		byConv[c.Conv] = c
	}
	if c := byConv[ab]; c.Last.GetId() != "b2" || c.Last.GetSeq() != 2 || c.LastTime != 111 || c.Unread != 2 {
		t.Errorf("alice-bob: last %v time %d unread %d, want b2 (seq 2) at 111, 2 unread", c.Last, c.LastTime, c.Unread)
	}
	if c := byConv[room]; c.Last.GetId() != "g1" || c.Unread != 1 || c.Peer != nil {
		t.Errorf("room: %v, want last g1, 1 unread, no peer cursor", c)
	}
	if c := byConv[ab]; c.Peer.GetRead() != 2 || c.Mine.GetRead() != 0 {
		t.Errorf("alice-bob cursors: mine %v peer %v, want peer (bob, the sender) read 2", c.Mine, c.Peer)
	}

	// Paging: newest first, before = the last time of the page.
	p1 := conversations(t, b, &pb.ConversationsRequest{User: "alice", Groups: []string{"room"}, Limit: 2})
	if len(p1.Conversations) != 2 || !p1.More || p1.Conversations[1].Conv != ac {
		t.Fatalf("first page of 2: %v, want room and alice-carol, more", p1)
	}
	p2 := conversations(t, b, &pb.ConversationsRequest{User: "alice", Groups: []string{"room"}, Limit: 2, Before: p1.Conversations[1].LastTime})
	if len(p2.Conversations) != 1 || p2.More || p2.Conversations[0].Conv != ab {
		t.Errorf("second page: %v, want alice-bob only", p2)
	}

	// Reads lower the unread counts; a recalled chat is not unread; the peer sees them.
	setCursor(t, b, "alice", ab, 0, 1)
	setCursor(t, b, "alice", room, 1, 0)                         // delivered only: still unread
	mustAppend(t, b, chat("carol", "alice", "c2", "again", 160)) // 161
	if _, err := b.Recall(ctx(t), &pb.RecallRequest{From: "carol", Id: "c1", By: "carol", Time: 170, Receivers: []string{"alice"}}); err != nil {
		t.Fatalf("Recall: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b = open(t, name) // cursors and heads survive a reopen
	t.Cleanup(func() { _ = b.Close() })
	list = conversations(t, b, &pb.ConversationsRequest{User: "alice", Groups: []string{"room"}})
	unread := map[string]int64{}
	order = order[:0]
	for _, c := range list.Conversations {
		unread[c.Conv] = c.Unread
		order = append(order, c.Conv)
	}
	if want := []string{ac, room, ab}; !slices.Equal(order, want) {
		t.Errorf("order after carol's new chat: %v, want %v", order, want)
	}
	if want := map[string]int64{ab: 1, ac: 1, room: 1}; !maps.Equal(unread, want) {
		t.Errorf("unread after reads and a recall: %v, want %v", unread, want)
	}
	if list.Conversations[0].Last.GetId() != "c2" {
		t.Errorf("alice-carol's last: %v, want c2", list.Conversations[0].Last)
	}
	bobs := conversations(t, b, &pb.ConversationsRequest{User: "bob", Groups: []string{"room"}})
	for _, c := range bobs.Conversations {
		if c.Conv == ab && (c.Peer.GetRead() != 1 || c.Peer.GetDelivered() != 1 || c.Mine.GetRead() != 2 || c.Unread != 0) {
			t.Errorf("bob's view of alice-bob: mine %v peer %v unread %d, want peer (alice) read 1, mine read 2, 0 unread", c.Mine, c.Peer, c.Unread)
		}
	}
	if len(bobs.Conversations) != 3 {
		t.Errorf("bob's conversations: %d, want 3 (alice, carol, room)", len(bobs.Conversations))
	}
	if _, err := b.Conversations(ctx(t), &pb.ConversationsRequest{}); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("Conversations without a user: %v, want ErrInvalid", err)
	}
}

// testConversationsTies: a page never ends inside one server time (before is exclusive),
// so paging loses no conversation whose last chat shares the time of a page's last one.
func testConversationsTies(t *testing.T, open Opener) {
	b := fresh(t, open)
	for i, peer := range []string{"p1", "p2", "p3"} {
		r := chat(peer, "zed", fmt.Sprint("t", i), "same time", 499) // server time 500
		mustAppend(t, b, r)
	}
	mustAppend(t, b, chat("p4", "zed", "t4", "older", 399))
	p1 := conversations(t, b, &pb.ConversationsRequest{User: "zed", Limit: 2})
	if len(p1.Conversations) != 3 || !p1.More {
		t.Fatalf("first page of 2 with 3 conversations at one time: %d conversations (more %v), want all 3 and more", len(p1.Conversations), p1.More)
	}
	p2 := conversations(t, b, &pb.ConversationsRequest{User: "zed", Limit: 2, Before: p1.Conversations[2].LastTime})
	if len(p2.Conversations) != 1 || p2.More || p2.Conversations[0].Last.GetId() != "t4" {
		t.Errorf("second page: %v, want only t4", p2)
	}
}
