package storagetest

import (
	"slices"
	"testing"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Read fan-out (large groups): a group chat flagged Message.ReadFanout is stored once and
// pulled into each member's inbox by Inbox. Every test here needs it: a plugin that does
// not answer OpenResponse.read_fanout skips them with -skip 'ReadFanout'.

// rfChat returns a read fan-out chat from a member to group (no receivers).
func rfChat(from, group, id string, serverTime int64) *pb.AppendRequest {
	return &pb.AppendRequest{
		Message: &pb.Message{Conv: storage.GroupConv(group), Id: id, From: from, GroupId: group,
			ChatType: storage.ChatTypeGroup, CreateTime: serverTime - 1, ServerTime: serverTime,
			Content: "to " + group, ReadFanout: true},
	}
}

func join(t *testing.T, b storage.Backend, group string, members ...string) {
	t.Helper()
	if _, err := b.JoinGroup(ctx(t), &pb.JoinGroupRequest{GroupId: group, Members: members}); err != nil {
		t.Fatalf("JoinGroup(%s, %v): %v", group, members, err)
	}
}

func leave(t *testing.T, b storage.Backend, group, member string) {
	t.Helper()
	if _, err := b.LeaveGroup(ctx(t), &pb.LeaveGroupRequest{GroupId: group, Member: member}); err != nil {
		t.Fatalf("LeaveGroup(%s, %s): %v", group, member, err)
	}
}

// pending returns the ids of user's inbox entries (of conv when set), in cursor order,
// and checks that cursors increase.
func pending(t *testing.T, b storage.Backend, user, conv string) []string {
	t.Helper()
	in := inbox(t, b, &pb.InboxRequest{User: user, Conv: conv})
	var out []string
	var last int64
	for _, e := range in.Entries {
		if e.Cursor <= last {
			t.Errorf("%s's inbox: cursor %d after %d", user, e.Cursor, last)
		}
		last = e.Cursor
		out = append(out, e.Message.Id)
	}
	return out
}

func wantPending(t *testing.T, b storage.Backend, user, conv string, want ...string) {
	t.Helper()
	if got := pending(t, b, user, conv); !slices.Equal(got, want) {
		t.Errorf("%s's inbox (conv %q): %v, want %v", user, conv, got, want)
	}
}

// testReadFanoutPull: a read fan-out chat is stored once with its seq and shown in
// history; every other member gets it by Inbox, once (a second query pulls nothing new,
// and keeps the cursors); the sender does not; a confirmation removes it for good; a
// resend is a duplicate that nobody gets twice.
func testReadFanoutPull(t *testing.T, open Opener) {
	b := fresh(t, open)
	join(t, b, "big", "alice", "bob", "carol")
	res := mustAppend(t, b, rfChat("alice", "big", "f1", 1001), rfChat("carol", "big", "f2", 1002), rfChat("alice", "big", "f3", 1003))
	for i, r := range res {
		if r.Error != "" || r.Duplicate || r.Seq != int64(i+1) {
			t.Fatalf("append result %d: %v, want seq %d", i, r, i+1)
		}
	}
	h := history(t, b, &pb.HistoryRequest{Conv: storage.GroupConv("big")})
	if got := ids(h.Messages); !slices.Equal(got, []string{"f1", "f2", "f3"}) || !h.Messages[0].ReadFanout {
		t.Fatalf("history: %v, want f1 f2 f3 flagged read fan-out", h.Messages)
	}
	first := inbox(t, b, &pb.InboxRequest{User: "bob"})
	if got := seqs(entriesMsgs(first)); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Fatalf("bob's inbox: seqs %v, want [1 2 3]", got)
	}
	if m := first.Entries[0].Message; m.From != "alice" || m.Content != "to big" || m.GroupId != "big" {
		t.Errorf("bob's first entry: %v", m)
	}
	again := inbox(t, b, &pb.InboxRequest{User: "bob"})
	if len(again.Entries) != 3 {
		t.Fatalf("bob's inbox queried again: %d entries, want the same 3", len(again.Entries))
	}
	for i := range again.Entries {
		if again.Entries[i].Cursor != first.Entries[i].Cursor {
			t.Errorf("entry %d: cursor %d, was %d", i, again.Entries[i].Cursor, first.Entries[i].Cursor)
		}
	}
	wantPending(t, b, "alice", "", "f2") // not her own chats
	wantPending(t, b, "carol", "", "f1", "f3")
	page := inbox(t, b, &pb.InboxRequest{User: "bob", Limit: 2})
	if len(page.Entries) != 2 || !page.More {
		t.Errorf("bob's page of 2: %d entries, more %v", len(page.Entries), page.More)
	}
	if r, err := b.Confirm(ctx(t), &pb.ConfirmRequest{User: "bob", Cursor: first.Entries[2].Cursor}); err != nil || r.Removed != 3 {
		t.Fatalf("Confirm: %v, %v, want 3 removed", r, err)
	}
	wantPending(t, b, "bob", "")
	dup := mustAppend(t, b, rfChat("alice", "big", "f1", 2000))[0]
	if !dup.Duplicate || dup.Seq != 1 || dup.ServerTime != 1001 {
		t.Errorf("resend of f1: %v, want a duplicate of seq 1", dup)
	}
	wantPending(t, b, "bob", "")
	mustAppend(t, b, rfChat("carol", "big", "f4", 1004))
	wantPending(t, b, "bob", "", "f4")
	wantPending(t, b, "alice", "", "f2", "f4")
}

func entriesMsgs(in *pb.InboxResponse) []*pb.Message {
	out := make([]*pb.Message, len(in.Entries))
	for i, e := range in.Entries {
		out[i] = e.Message
	}
	return out
}

// testReadFanoutMembers: membership as the plugin knows it decides who pulls: a member
// who joined after a chat does not get it, joining again does not reset that, a member
// who left keeps what it pulled and gets nothing after, and one who never joined gets
// nothing.
func testReadFanoutMembers(t *testing.T, open Opener) {
	b := fresh(t, open)
	join(t, b, "big", "alice", "bob", "carol")
	mustAppend(t, b, rfChat("alice", "big", "m1", 1001), rfChat("alice", "big", "m2", 1002))
	join(t, b, "big", "dave")
	join(t, b, "big", "bob", "dave") // already members: their join seqs stay
	mustAppend(t, b, rfChat("alice", "big", "m3", 1003))
	wantPending(t, b, "dave", "", "m3")
	wantPending(t, b, "bob", "", "m1", "m2", "m3")
	wantPending(t, b, "carol", "", "m1", "m2", "m3")
	leave(t, b, "big", "carol")
	mustAppend(t, b, rfChat("alice", "big", "m4", 1004))
	wantPending(t, b, "carol", "", "m1", "m2", "m3")
	wantPending(t, b, "eve", "")
	join(t, b, "big", "carol") // back: from now on only
	mustAppend(t, b, rfChat("alice", "big", "m5", 1005))
	wantPending(t, b, "carol", "", "m1", "m2", "m3", "m5")
	wantPending(t, b, "bob", "", "m1", "m2", "m3", "m4", "m5")
	// A join in the same call as a chat still in the plugin's write path: the join seq
	// counts every chat appended before the join returned.
	mustAppend(t, b, rfChat("alice", "big", "m6", 1006))
	join(t, b, "big", "frank")
	mustAppend(t, b, rfChat("alice", "big", "m7", 1007))
	wantPending(t, b, "frank", "", "m7")
}

// testReadFanoutReceipts: a delivered receipt (SetCursor) of the group raises what is
// pulled: chats up to it are never pulled (and pulled ones are removed, as always); the
// sender's own cursor raise by Append does not hide the chats of others before it.
func testReadFanoutReceipts(t *testing.T, open Opener) {
	b := fresh(t, open)
	g := storage.GroupConv("big")
	join(t, b, "big", "alice", "bob")
	mustAppend(t, b, rfChat("alice", "big", "c1", 1001), rfChat("alice", "big", "c2", 1002), rfChat("alice", "big", "c3", 1003))
	setCursor(t, b, "bob", g, 2, 0) // delivered up to 2 before any pull
	wantPending(t, b, "bob", "", "c3")
	mustAppend(t, b, rfChat("alice", "big", "c4", 1004), rfChat("alice", "big", "c5", 1005))
	if r := setCursor(t, b, "bob", g, 0, 4); r.Removed != 1 { // read implies delivered: removes c3 (pulled); c4 not pulled yet
		t.Errorf("read up to 4 removed %d entries, want 1 (c3)", r.Removed)
	}
	wantPending(t, b, "bob", "", "c5")
	// bob sends: his cursors rise to his chat's seq, yet alice's c6 before it stays due.
	mustAppend(t, b, rfChat("alice", "big", "c6", 1006))
	mustAppend(t, b, rfChat("bob", "big", "c7", 1007))
	if c := setCursor(t, b, "bob", g, 0, 0).Cursor; c.Delivered != 7 {
		t.Errorf("bob's cursor after sending seq 7: %v", c)
	}
	wantPending(t, b, "bob", "", "c5", "c6")
	wantPending(t, b, "alice", "", "c7")
}

// testReadFanoutMixed: write and read fan-out chats of one group (a group that grew
// past the threshold, or a threshold changed) and private chats share the inbox: each
// once, in cursor order, and the conversation filter of Inbox and Confirm still applies.
func testReadFanoutMixed(t *testing.T, open Opener) {
	b := fresh(t, open)
	join(t, b, "big", "alice", "bob")
	join(t, b, "small", "alice", "bob")
	mustAppend(t, b, groupChat("alice", "big", "w1", "bob"), rfChat("alice", "big", "r2", 1002))
	mustAppend(t, b, chat("alice", "bob", "p1", "hi", 1003), groupChat("alice", "small", "s1", "bob"))
	// A filtered query pulls too, and shows only its conversation.
	wantPending(t, b, "bob", storage.PrivateConv("alice", "bob"), "p1")
	mustAppend(t, b, rfChat("alice", "big", "r3", 1004))
	wantPending(t, b, "bob", storage.GroupConv("big"), "w1", "r2", "r3")
	wantPending(t, b, "bob", "", "w1", "p1", "s1", "r2", "r3") // r2 pulled after s1 was appended
	in := inbox(t, b, &pb.InboxRequest{User: "bob", Conv: storage.GroupConv("big")})
	last := in.Entries[len(in.Entries)-1].Cursor
	if r, err := b.Confirm(ctx(t), &pb.ConfirmRequest{User: "bob", Cursor: last, Conv: storage.GroupConv("big")}); err != nil || r.Removed != 3 {
		t.Fatalf("Confirm of big: %v, %v, want 3 removed", r, err)
	}
	wantPending(t, b, "bob", "", "p1", "s1")
	after := inbox(t, b, &pb.InboxRequest{User: "bob", After: last})
	if len(after.Entries) != 0 {
		t.Errorf("entries after cursor %d: %v", last, after.Entries)
	}
}

// testReadFanoutRecall: a read fan-out chat recalled before a member pulls it is pulled
// recalled (content cleared), and the recall event reaches the member as the host asks
// (its receivers).
func testReadFanoutRecall(t *testing.T, open Opener) {
	b := fresh(t, open)
	join(t, b, "big", "alice", "bob")
	mustAppend(t, b, rfChat("alice", "big", "x1", 1001), rfChat("alice", "big", "x2", 1002))
	res, err := b.Recall(ctx(t), &pb.RecallRequest{From: "alice", Id: "x1", By: "alice", Time: 2000,
		Receivers: []string{"bob"}, Conv: storage.GroupConv("big")})
	if err != nil || res.Event.GetSeq() != 3 {
		t.Fatalf("Recall: %v, %v", res, err)
	}
	in := inbox(t, b, &pb.InboxRequest{User: "bob"})
	var got []string
	for _, e := range in.Entries {
		m := e.Message
		switch {
		case m.Kind == storage.KindRecall:
			got = append(got, "event:"+m.RecallId)
		case m.Recalled:
			if m.Content != "" {
				t.Errorf("recalled %s pulled with content %q", m.Id, m.Content)
			}
			got = append(got, "recalled:"+m.Id)
		default:
			got = append(got, m.Id)
		}
	}
	slices.Sort(got)
	if want := []string{"event:x1", "recalled:x1", "x2"}; !slices.Equal(got, want) {
		t.Errorf("bob's inbox after the recall: %v, want %v", got, want)
	}
}

// testReadFanoutReopen: pulled entries, pulled marks and join seqs survive a reopen: no
// chat is pulled twice, none is lost.
func testReadFanoutReopen(t *testing.T, open Opener) {
	name := newName()
	b := open(t, name)
	join(t, b, "big", "alice", "bob")
	mustAppend(t, b, rfChat("alice", "big", "o1", 1001))
	join(t, b, "big", "carol")
	mustAppend(t, b, rfChat("alice", "big", "o2", 1002))
	wantPending(t, b, "bob", "", "o1", "o2")
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b = open(t, name)
	t.Cleanup(func() { _ = b.Close() })
	mustAppend(t, b, rfChat("alice", "big", "o3", 1003))
	wantPending(t, b, "bob", "", "o1", "o2", "o3")
	wantPending(t, b, "carol", "", "o2", "o3")
}

// testReadFanoutInvalid: only a group chat can be read fan-out: another is refused with
// a per-chat error and not stored.
func testReadFanoutInvalid(t *testing.T, open Opener) {
	b := fresh(t, open)
	bad := chat("alice", "bob", "i1", "x", 100)
	bad.Message.ReadFanout = true
	res := mustAppend(t, b, bad, rfChat("alice", "big", "i2", 1001))
	if res[0].Error == "" || res[1].Error != "" || res[1].Seq != 1 {
		t.Errorf("results %v: want an error for the private chat, seq 1 for the group chat", res)
	}
	if h := history(t, b, &pb.HistoryRequest{Conv: storage.PrivateConv("alice", "bob")}); len(h.Messages) != 0 {
		t.Errorf("the refused chat was stored: %v", h.Messages)
	}
}

// testReadFanoutRetention: expired read fan-out chats are not pulled; EraseUser drops the
// user's memberships (a later join starts from then) and the user's sent chats (nobody
// pulls them). Skipped for a plugin without storage.Retainer.
func testReadFanoutRetention(t *testing.T, open Opener) {
	b := fresh(t, open)
	r := retainer(t, b)
	join(t, b, "big", "alice", "bob", "carol", "dave")
	mustAppend(t, b, rfChat("alice", "big", "e1", 1001), rfChat("carol", "big", "e2", 1002), rfChat("alice", "big", "e3", 5001))
	wantPending(t, b, "dave", "", "e1", "e2", "e3")
	expire(t, r, storage.ChatTypeGroup, 2000, 0)
	wantPending(t, b, "bob", "", "e3")
	wantPending(t, b, "dave", "", "e3")
	if _, err := r.EraseUser(ctx(t), &pb.EraseUserRequest{User: "alice"}); err != nil {
		t.Fatalf("EraseUser(alice): %v", err)
	}
	wantPending(t, b, "carol", "")
	mustAppend(t, b, rfChat("carol", "big", "e4", 5002))
	if _, err := r.EraseUser(ctx(t), &pb.EraseUserRequest{User: "bob"}); err != nil {
		t.Fatalf("EraseUser(bob): %v", err)
	}
	wantPending(t, b, "bob", "")
	mustAppend(t, b, rfChat("carol", "big", "e5", 5003))
	wantPending(t, b, "bob", "")
	join(t, b, "big", "bob")
	mustAppend(t, b, rfChat("carol", "big", "e6", 5004))
	wantPending(t, b, "bob", "", "e6")
	wantPending(t, b, "dave", "", "e4", "e5", "e6")
}
