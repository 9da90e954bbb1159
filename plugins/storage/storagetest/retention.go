package storagetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Retention and erasure (storage.Retainer, optional): skipped for a plugin without them.

// retainer returns b as a Retainer, or skips t when the plugin does not implement it.
func retainer(t *testing.T, b storage.Backend) storage.Retainer {
	t.Helper()
	r, ok := b.(storage.Retainer)
	if !ok {
		t.Skip("the plugin does not implement storage.Retainer")
	}
	if _, err := r.Expire(ctx(t), &pb.ExpireRequest{ChatType: storage.ChatTypeGroup, BeforeMs: 1, Limit: 1}); errors.Is(err, storage.ErrUnsupported) {
		t.Skip("the plugin does not implement storage.Retainer")
	}
	return r
}

func expire(t *testing.T, r storage.Retainer, chatType int32, before int64, limit int32) *pb.ExpireResponse {
	t.Helper()
	res, err := r.Expire(ctx(t), &pb.ExpireRequest{ChatType: chatType, BeforeMs: before, Limit: limit})
	if err != nil {
		t.Fatalf("Expire(%d, %d, %d): %v", chatType, before, limit, err)
	}
	return res
}

// convOf returns the conversations of a list, by key.
func convsOf(res *pb.ConversationsResponse) map[string]*pb.Conversation {
	out := map[string]*pb.Conversation{}
	for _, c := range res.Conversations {
		out[c.Conv] = c
	}
	return out
}

// testExpire: expired messages of one kind leave history, inboxes, unread counts and,
// once all are gone, the conversation list; the other kind stays; seqs are not reused.
func testExpire(t *testing.T, open Opener) {
	b := fresh(t, open)
	r := retainer(t, b)
	ab, room := storage.PrivateConv("alice", "bob"), storage.GroupConv("room")
	mustAppend(t, b, chat("alice", "bob", "a1", "old", 1000), chat("alice", "bob", "a2", "old", 2000),
		chat("alice", "bob", "a3", "new", 3000), groupChat("carol", "room", "g1", "bob"))
	if _, err := r.Expire(ctx(t), &pb.ExpireRequest{ChatType: 3, BeforeMs: 5}); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("Expire(chat type 3): %v, want ErrInvalid", err)
	}
	if res := expire(t, r, storage.ChatTypePrivate, 2500, 0); res.Removed != 2 || res.More {
		t.Fatalf("Expire(private, 2500): %v, want 2 removed and no more", res)
	}
	if got := seqs(history(t, b, &pb.HistoryRequest{Conv: ab}).Messages); !slices.Equal(got, []int64{3}) {
		t.Errorf("history after expiry: seqs %v, want [3]", got)
	}
	if got := seqs(history(t, b, &pb.HistoryRequest{Conv: room}).Messages); !slices.Equal(got, []int64{1}) {
		t.Errorf("group history after a private expiry: seqs %v, want [1]", got)
	}
	var got []string
	for _, e := range inbox(t, b, &pb.InboxRequest{User: "bob"}).Entries {
		got = append(got, e.Message.Id)
	}
	if !slices.Equal(got, []string{"a3", "g1"}) {
		t.Errorf("bob's inbox after expiry: %v, want [a3 g1]", got)
	}
	list := convsOf(conversations(t, b, &pb.ConversationsRequest{User: "bob", Groups: []string{"room"}}))
	if c := list[ab]; c == nil || c.Unread != 1 || c.Last.GetId() != "a3" {
		t.Errorf("bob's private conversation after expiry: %v, want last a3 and 1 unread", c)
	}
	// Everything private expires: the conversation leaves the list, seqs go on.
	if res := expire(t, r, storage.ChatTypePrivate, 1<<50, 0); res.Removed != 1 {
		t.Errorf("Expire(private, all): removed %d, want 1", res.Removed)
	}
	if h := history(t, b, &pb.HistoryRequest{Conv: ab}); len(h.Messages) != 0 {
		t.Errorf("history after everything expired: %v", seqs(h.Messages))
	}
	list = convsOf(conversations(t, b, &pb.ConversationsRequest{User: "bob", Groups: []string{"room"}}))
	if list[ab] != nil || list[room] == nil {
		t.Errorf("bob's conversations after the private one expired: %v, want only %s", list, room)
	}
	if res := mustAppend(t, b, chat("bob", "alice", "b1", "again", 9000)); res[0].Seq != 4 {
		t.Errorf("a chat after expiry got seq %d, want 4 (seqs are never reused)", res[0].Seq)
	}
	if res := expire(t, r, storage.ChatTypeGroup, 1<<50, 0); res.Removed != 1 || res.InboxRemoved != 0 && res.InboxRemoved != 1 {
		t.Errorf("Expire(group, all): %v, want 1 removed", res)
	}
	for _, e := range inbox(t, b, &pb.InboxRequest{User: "bob"}).Entries {
		t.Errorf("bob's inbox after all expired still has %s", e.Message.Id)
	}
}

// testExpireBatches: Expire removes at most limit messages and says when more are due.
func testExpireBatches(t *testing.T, open Opener) {
	b := fresh(t, open)
	r := retainer(t, b)
	for i, to := range []string{"bob", "bob", "carol", "carol", "dave"} {
		mustAppend(t, b, chat("alice", to, "m"+string(rune('0'+i)), "x", int64(1000+i)))
	}
	first := expire(t, r, storage.ChatTypePrivate, 5000, 2)
	if first.Removed != 2 || !first.More {
		t.Fatalf("first batch: %v, want 2 removed and more", first)
	}
	total := first.Removed
	for i := 0; i < 10; i++ {
		res := expire(t, r, storage.ChatTypePrivate, 5000, 2)
		if res.Removed > 2 {
			t.Fatalf("a batch of limit 2 removed %d", res.Removed)
		}
		total += res.Removed
		if !res.More {
			break
		}
	}
	if total != 5 {
		t.Errorf("batches removed %d in all, want 5", total)
	}
	if res := expire(t, r, storage.ChatTypePrivate, 5000, 2); res.Removed != 0 || res.More {
		t.Errorf("after everything expired: %v, want nothing", res)
	}
}

// testEraseUser: a user's sent messages (and the recall events naming them), private
// conversations, inbox, cursors, record and memberships go; everything else stays.
func testEraseUser(t *testing.T, open Opener) {
	b := fresh(t, open)
	r := retainer(t, b)
	ctx := ctx(t)
	if _, err := b.JoinGroup(ctx, &pb.JoinGroupRequest{GroupId: "room", Members: []string{"alice", "bob", "carol"}}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := b.PutUser(ctx, &pb.PutUserRequest{User: &pb.User{UserId: u, Nick: u}}); err != nil {
			t.Fatal(err)
		}
	}
	ab, bc, room := storage.PrivateConv("alice", "bob"), storage.PrivateConv("bob", "carol"), storage.GroupConv("room")
	mustAppend(t, b, chat("alice", "bob", "a1", "hi", 1000), chat("bob", "alice", "b1", "hey", 1001),
		chat("bob", "carol", "b2", "yo", 1002), groupChat("bob", "room", "gb", "alice", "carol"),
		groupChat("alice", "room", "ga", "bob", "carol"))
	setCursor(t, b, "bob", room, 2, 2)
	if _, err := b.Recall(ctx, &pb.RecallRequest{From: "bob", Id: "gb", By: "bob", Time: 2000, Receivers: []string{"alice", "carol"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.EraseUser(ctx, &pb.EraseUserRequest{}); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("EraseUser(empty): %v, want ErrInvalid", err)
	}
	res, err := r.EraseUser(ctx, &pb.EraseUserRequest{User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages != 5 || res.Conversations != 2 || res.Groups != 1 {
		t.Errorf("EraseUser(bob): %v, want 5 messages (with the recall event), 2 conversations, 1 group", res)
	}
	for _, conv := range []string{ab, bc} {
		if h := history(t, b, &pb.HistoryRequest{Conv: conv}); len(h.Messages) != 0 {
			t.Errorf("history of %s after erasure: %v", conv, ids(h.Messages))
		}
	}
	if got := ids(history(t, b, &pb.HistoryRequest{Conv: room}).Messages); !slices.Equal(got, []string{"ga"}) {
		t.Errorf("group history after erasure: %v, want [ga]", got)
	}
	for user, want := range map[string][]string{"alice": nil, "bob": nil, "carol": {"ga"}} {
		var got []string
		for _, e := range inbox(t, b, &pb.InboxRequest{User: user}).Entries {
			got = append(got, e.Message.Id)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s's inbox after erasure: %v, want %v", user, got, want)
		}
	}
	if cs, err := b.Cursors(ctx, &pb.CursorsRequest{User: "bob", Convs: []string{room, ab}}); err != nil || len(cs.Cursors) != 0 {
		t.Errorf("bob's cursors after erasure: %v, %v, want none", cs, err)
	}
	if list := convsOf(conversations(t, b, &pb.ConversationsRequest{User: "alice", Groups: []string{"room"}})); list[ab] != nil || list[room] == nil {
		t.Errorf("alice's conversations after erasure: %v, want only %s", list, room)
	}
	users, err := b.ListUsers(ctx, &pb.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users.Users {
		if u.UserId == "bob" {
			t.Errorf("bob is still a known user after erasure")
		}
	}
	groups, err := b.ListGroups(ctx, &pb.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups.Groups {
		if g.GroupId == "room" && slices.Contains(g.Members, "bob") {
			t.Errorf("bob is still a member of room after erasure: %v", g.Members)
		}
	}
	if res := mustAppend(t, b, chat("alice", "bob", "a2", "back?", 5000)); res[0].Seq != 3 {
		t.Errorf("a chat after erasure got seq %d, want 3 (seqs are never reused)", res[0].Seq)
	}
	if again, err := r.EraseUser(ctx, &pb.EraseUserRequest{User: "nobody"}); err != nil || again.Messages != 0 {
		t.Errorf("EraseUser(nobody): %v, %v, want nothing removed", again, err)
	}
}

// testExpireAfterChanges: expiry finds what is due after the first messages of
// conversations changed: a recalled first chat and its recall event, a group's first chat
// removed by erasure, a conversation emptied by expiry and written again, a reopen.
func testExpireAfterChanges(t *testing.T, open Opener) {
	name := newName()
	b := open(t, name)
	r := retainer(t, b)
	ab, cd, room := storage.PrivateConv("alice", "bob"), storage.PrivateConv("carol", "dave"), storage.GroupConv("room")
	join(t, b, "room", "alice", "bob", "erin")
	groupAt := func(from, id string, serverTime int64) *pb.AppendRequest {
		req := groupChat(from, "room", id, "alice")
		req.Message.CreateTime, req.Message.ServerTime = serverTime-1, serverTime
		return req
	}
	mustAppend(t, b, chat("alice", "bob", "a1", "x", 1000), chat("alice", "bob", "a2", "x", 2000),
		chat("carol", "dave", "c1", "x", 3000), groupAt("erin", "g1", 1001), groupAt("bob", "g2", 4001))
	if _, err := b.Recall(ctx(t), &pb.RecallRequest{From: "alice", Id: "a1", By: "alice", Time: 2500, Receivers: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	// The recalled chat keeps its time; its recall event (seq 3) is due later.
	if res := expire(t, r, storage.ChatTypePrivate, 2200, 0); res.Removed != 2 || res.More {
		t.Errorf("Expire(private, 2200): %v, want a1 and a2 removed", res)
	}
	if got := seqs(history(t, b, &pb.HistoryRequest{Conv: ab}).Messages); !slices.Equal(got, []int64{3}) {
		t.Errorf("history after a1 and a2 expired: seqs %v, want [3] (the recall event)", got)
	}
	// Erasure removes the group's first chat: its second one is due at its own time.
	if _, err := r.EraseUser(ctx(t), &pb.EraseUserRequest{User: "erin"}); err != nil {
		t.Fatal(err)
	}
	if res := expire(t, r, storage.ChatTypeGroup, 3000, 0); res.Removed != 0 {
		t.Errorf("Expire(group, 3000) after erin's chat was erased: %v, want nothing (g2 is at 4001)", res)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b = open(t, name)
	t.Cleanup(func() { _ = b.Close() })
	r = retainer(t, b)
	if res := expire(t, r, storage.ChatTypeGroup, 5000, 0); res.Removed != 1 {
		t.Errorf("Expire(group, 5000) after reopen: %v, want g2 removed", res)
	}
	if res := expire(t, r, storage.ChatTypePrivate, 2600, 0); res.Removed != 1 {
		t.Errorf("Expire(private, 2600) after reopen: %v, want the recall event removed", res)
	}
	// The emptied conversation is written again, with an old server time: it is found.
	if res := mustAppend(t, b, chat("bob", "alice", "b1", "late", 100)); res[0].Seq != 4 {
		t.Errorf("a chat after expiry got seq %d, want 4", res[0].Seq)
	}
	if res := expire(t, r, storage.ChatTypePrivate, 200, 0); res.Removed != 1 {
		t.Errorf("Expire(private, 200) after the conversation was written again: %v, want b1 removed", res)
	}
	if got := ids(history(t, b, &pb.HistoryRequest{Conv: cd}).Messages); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("history of %s: %v, want [c1] (not due yet)", cd, got)
	}
	if res := expire(t, r, storage.ChatTypePrivate, 1<<50, 0); res.Removed != 1 || res.More {
		t.Errorf("Expire(private, all): %v, want c1 removed and no more", res)
	}
	for _, conv := range []string{ab, cd, room} {
		if h := history(t, b, &pb.HistoryRequest{Conv: conv}); len(h.Messages) != 0 {
			t.Errorf("history of %s after everything expired: %v", conv, ids(h.Messages))
		}
	}
	if res := expire(t, r, storage.ChatTypeGroup, 1<<50, 0); res.Removed != 0 || res.More {
		t.Errorf("Expire(group, all) with nothing left: %v", res)
	}
}
