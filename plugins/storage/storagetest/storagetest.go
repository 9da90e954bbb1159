// Package storagetest is the conformance suite of timgw storage plugins: every plugin must
// pass Run. A plugin's test calls it with a function that opens its store:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T, name string) storage.Backend { ... })
//	}
//
// and, to check the plugin through the gRPC transport as the gateway uses it, once more
// with OverGRPC around the same function.
package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Opener opens the store called name and returns it opened (Open called). The first
// time a name is used the store must be empty; opening a name again after its previous
// Backend was closed must give the same data back. Names are short lowercase letters and
// digits (fit for a directory or a database name). The test closes what it opens.
type Opener func(t *testing.T, name string) storage.Backend

var (
	runID   = randomHex(4)
	nameSeq atomic.Int64
)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newName returns a store name unique in this process and run.
func newName() string { return fmt.Sprintf("st%s%d", runID, nameSeq.Add(1)) }

// Run runs the conformance suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"AppendSeq", testAppendSeq},
		{"AppendDuplicate", testAppendDuplicate},
		{"AppendInvalid", testAppendInvalid},
		{"AppendLargeBatch", testAppendLargeBatch},
		{"AppendConcurrent", testAppendConcurrent},
		{"History", testHistory},
		{"Inbox", testInbox},
		{"Confirm", testConfirm},
		{"Recall", testRecall},
		{"RecallErrors", testRecallErrors},
		{"Groups", testGroups},
		{"Users", testUsers},
		{"Reopen", testReopen},
		{"CursorRaise", testCursorRaise},
		{"CursorInbox", testCursorInbox},
		{"CursorSender", testCursorSender},
		{"Conversations", testConversations},
		{"ConversationsTies", testConversationsTies},
		{"Expire", testExpire},
		{"ExpireBatches", testExpireBatches},
		{"ExpireAfterChanges", testExpireAfterChanges},
		{"EraseUser", testEraseUser},
		{"ReadFanoutPull", testReadFanoutPull},
		{"ReadFanoutMembers", testReadFanoutMembers},
		{"ReadFanoutReceipts", testReadFanoutReceipts},
		{"ReadFanoutMixed", testReadFanoutMixed},
		{"ReadFanoutRecall", testReadFanoutRecall},
		{"ReadFanoutReopen", testReadFanoutReopen},
		{"ReadFanoutInvalid", testReadFanoutInvalid},
		{"ReadFanoutRetention", testReadFanoutRetention},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// fresh opens a new store, closed when t ends.
func fresh(t *testing.T, open Opener) storage.Backend {
	t.Helper()
	b := open(t, newName())
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// chat returns a private chat from -> to.
func chat(from, to, id, content string, createTime int64) *pb.AppendRequest {
	return &pb.AppendRequest{
		Message: &pb.Message{Conv: storage.PrivateConv(from, to), Id: id, From: from, To: to,
			ChatType: storage.ChatTypePrivate, CreateTime: createTime, ServerTime: createTime + 1, Content: content},
		Receivers: []string{to},
	}
}

// groupChat returns a chat from a member to group with inbox entries for receivers.
func groupChat(from, group, id string, receivers ...string) *pb.AppendRequest {
	return &pb.AppendRequest{
		Message: &pb.Message{Conv: storage.GroupConv(group), Id: id, From: from, GroupId: group,
			ChatType: storage.ChatTypeGroup, CreateTime: 1000, ServerTime: 1001, Content: "to " + group},
		Receivers: receivers,
	}
}

func mustAppend(t *testing.T, b storage.Backend, reqs ...*pb.AppendRequest) []*pb.AppendResult {
	t.Helper()
	res, err := b.Append(ctx(t), reqs)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(res) != len(reqs) {
		t.Fatalf("Append: %d results for %d requests", len(res), len(reqs))
	}
	return res
}

func history(t *testing.T, b storage.Backend, req *pb.HistoryRequest) *pb.HistoryResponse {
	t.Helper()
	res, err := b.History(ctx(t), req)
	if err != nil {
		t.Fatalf("History(%v): %v", req, err)
	}
	return res
}

func inbox(t *testing.T, b storage.Backend, req *pb.InboxRequest) *pb.InboxResponse {
	t.Helper()
	res, err := b.Inbox(ctx(t), req)
	if err != nil {
		t.Fatalf("Inbox(%v): %v", req, err)
	}
	return res
}

func seqs(ms []*pb.Message) []int64 {
	out := []int64{}
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

func ids(ms []*pb.Message) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Id)
	}
	return out
}

func testAppendSeq(t *testing.T, open Opener) {
	b := fresh(t, open)
	ab, ac := storage.PrivateConv("alice", "bob"), storage.PrivateConv("alice", "carol")
	req := chat("alice", "bob", "m1", "hello", 100)
	req.Message.MsgType, req.Message.Extras = 1, []byte(`{"k":"v","n":[1,2]}`)
	res := mustAppend(t, b,
		req,
		chat("alice", "carol", "m2", "hi carol", 101),
		chat("bob", "alice", "m3", "héllo 😀", 102),
	)
	res = append(res, mustAppend(t, b, chat("alice", "bob", "m4", "again", 103))...)
	want := []int64{1, 1, 2, 3}
	for i, r := range res {
		if r.Error != "" || r.Duplicate || r.Seq != want[i] {
			t.Errorf("result %d: %v, want seq %d", i, r, want[i])
		}
	}
	if res[0].ServerTime != 101 || res[0].CreateTime != 100 {
		t.Errorf("result 0 times: server %d create %d, want 101, 100", res[0].ServerTime, res[0].CreateTime)
	}
	h := history(t, b, &pb.HistoryRequest{Conv: ab})
	if got := ids(h.Messages); !slices.Equal(got, []string{"m1", "m3", "m4"}) || h.More {
		t.Fatalf("history of alice-bob: %v more=%v, want [m1 m3 m4]", got, h.More)
	}
	m := h.Messages[0]
	wantM := &pb.Message{Conv: ab, Seq: 1, Id: "m1", From: "alice", To: "bob", ChatType: storage.ChatTypePrivate,
		MsgType: 1, CreateTime: 100, ServerTime: 101, Content: "hello", Extras: []byte(`{"k":"v","n":[1,2]}`)}
	if !proto.Equal(m, wantM) {
		t.Errorf("stored message\n got %v\nwant %v", m, wantM)
	}
	if h.Messages[1].Content != "héllo 😀" {
		t.Errorf("content %q did not round-trip", h.Messages[1].Content)
	}
	if h := history(t, b, &pb.HistoryRequest{Conv: ac}); !slices.Equal(seqs(h.Messages), []int64{1}) {
		t.Errorf("history of alice-carol: seqs %v, want [1]", seqs(h.Messages))
	}
}

func testAppendDuplicate(t *testing.T, open Opener) {
	b := fresh(t, open)
	first := mustAppend(t, b, chat("alice", "bob", "dup", "one", 100))[0]
	again := chat("alice", "bob", "dup", "one, resent", 200)
	res := mustAppend(t, b,
		again,
		chat("bob", "alice", "dup", "same id, other sender", 300),
		chat("alice", "bob", "new", "new", 400),
		chat("alice", "bob", "new", "new, twice in a batch", 500),
	)
	if r := res[0]; !r.Duplicate || r.Seq != first.Seq || r.ServerTime != first.ServerTime || r.CreateTime != 100 {
		t.Errorf("resend: %v, want duplicate of %v with create time 100", r, first)
	}
	if r := res[1]; r.Duplicate || r.Seq != 2 {
		t.Errorf("same id from another sender: %v, want seq 2, not a duplicate", r)
	}
	if r := res[2]; r.Duplicate || r.Seq != 3 {
		t.Errorf("new: %v, want seq 3", r)
	}
	if r := res[3]; !r.Duplicate || r.Seq != 3 || r.CreateTime != 400 {
		t.Errorf("duplicate in the same batch: %v, want duplicate of seq 3", r)
	}
	h := history(t, b, &pb.HistoryRequest{Conv: storage.PrivateConv("alice", "bob")})
	if got := seqs(h.Messages); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("history seqs %v, want [1 2 3]", got)
	}
	if h.Messages[0].Content != "one" {
		t.Errorf("the resend replaced the stored content: %q", h.Messages[0].Content)
	}
	in := inbox(t, b, &pb.InboxRequest{User: "bob"})
	if len(in.Entries) != 2 {
		t.Errorf("bob's inbox has %d entries, want 2 (duplicates add none)", len(in.Entries))
	}
}

func testAppendInvalid(t *testing.T, open Opener) {
	b := fresh(t, open)
	noID := chat("alice", "bob", "", "no id", 1)
	noConv := chat("alice", "bob", "x", "no conv", 1)
	noConv.Message.Conv = ""
	res := mustAppend(t, b, noID, chat("alice", "bob", "ok", "fine", 1), noConv)
	if res[0].Error == "" || res[2].Error == "" {
		t.Errorf("invalid chats stored: %v, %v", res[0], res[2])
	}
	if res[1].Error != "" || res[1].Seq != 1 {
		t.Errorf("valid chat in a batch with invalid ones: %v, want seq 1", res[1])
	}
}

func testAppendLargeBatch(t *testing.T, open Opener) {
	b := fresh(t, open)
	const n, convs = 1000, 10
	reqs := make([]*pb.AppendRequest, 0, n+10)
	for i := range n {
		reqs = append(reqs, chat("u", fmt.Sprintf("peer%d", i%convs), fmt.Sprintf("id%d", i), "x", int64(i)))
	}
	for i := range 10 { // resends of the first ten
		reqs = append(reqs, chat("u", fmt.Sprintf("peer%d", i%convs), fmt.Sprintf("id%d", i), "x", 0))
	}
	res := mustAppend(t, b, reqs...)
	for i, r := range res {
		wantSeq := int64(i/convs + 1)
		if i >= n {
			wantSeq = 1
		}
		if r.Error != "" || r.Seq != wantSeq || r.Duplicate != (i >= n) {
			t.Fatalf("result %d: %v, want seq %d duplicate %v", i, r, wantSeq, i >= n)
		}
	}
	h := history(t, b, &pb.HistoryRequest{Conv: storage.PrivateConv("u", "peer3"), Reverse: true, Limit: 5})
	if got := seqs(h.Messages); !slices.Equal(got, []int64{96, 97, 98, 99, 100}) || !h.More {
		t.Errorf("latest 5 of peer3: %v more=%v, want [96..100] more", got, h.More)
	}
}

func testAppendConcurrent(t *testing.T, open Opener) {
	b := fresh(t, open)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				to := fmt.Sprintf("peer%d", i%4)
				res, err := b.Append(context.Background(), []*pb.AppendRequest{chat(fmt.Sprintf("w%d", w), to, fmt.Sprintf("m%d", i), "c", 1)})
				if err == nil && (len(res) != 1 || res[0].Error != "") {
					err = fmt.Errorf("result %v", res)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range writers {
		for p := range 4 {
			h := history(t, b, &pb.HistoryRequest{Conv: storage.PrivateConv(fmt.Sprintf("w%d", w), fmt.Sprintf("peer%d", p))})
			want := make([]int64, 0, each/4+1)
			for s := int64(1); s <= int64(len(h.Messages)); s++ {
				want = append(want, s)
			}
			if got := seqs(h.Messages); len(got) < each/4 || !slices.Equal(got, want) {
				t.Errorf("w%d-peer%d: seqs %v, want 1..%d without gaps", w, p, got, len(got))
			}
		}
	}
}

func testHistory(t *testing.T, open Opener) {
	b := fresh(t, open)
	conv := storage.PrivateConv("alice", "bob")
	var reqs []*pb.AppendRequest
	for i := 1; i <= 20; i++ { // seq i has create time 1000 + 10 i
		reqs = append(reqs, chat("alice", "bob", fmt.Sprintf("h%d", i), "x", int64(1000+10*i)))
	}
	mustAppend(t, b, reqs...)
	span := func(lo, hi int64) []int64 {
		var s []int64
		for i := lo; i <= hi; i++ {
			s = append(s, i)
		}
		return s
	}
	cases := []struct {
		name string
		req  *pb.HistoryRequest
		want []int64
		more bool
	}{
		{"all", &pb.HistoryRequest{}, span(1, 20), false},
		{"limit", &pb.HistoryRequest{Limit: 5}, span(1, 5), true},
		{"limit exact", &pb.HistoryRequest{Limit: 20}, span(1, 20), false},
		{"offset", &pb.HistoryRequest{Offset: 5, Limit: 3}, span(6, 8), true},
		{"offset past end", &pb.HistoryRequest{Offset: 30}, nil, false},
		{"after", &pb.HistoryRequest{AfterSeq: 17}, span(18, 20), false},
		{"after last", &pb.HistoryRequest{AfterSeq: 20}, nil, false},
		{"before", &pb.HistoryRequest{BeforeSeq: 4}, span(1, 3), false},
		{"after and before", &pb.HistoryRequest{AfterSeq: 5, BeforeSeq: 9}, span(6, 8), false},
		{"empty range", &pb.HistoryRequest{AfterSeq: 5, BeforeSeq: 6}, nil, false},
		{"time range", &pb.HistoryRequest{BeginTime: 1050, EndTime: 1080}, span(5, 8), false},
		{"begin time", &pb.HistoryRequest{BeginTime: 1195}, span(20, 20), false},
		{"time and offset", &pb.HistoryRequest{BeginTime: 1050, Offset: 2, Limit: 2}, span(7, 8), true},
		{"reverse", &pb.HistoryRequest{Reverse: true, Limit: 4}, span(17, 20), true},
		{"reverse all", &pb.HistoryRequest{Reverse: true}, span(1, 20), false},
		{"reverse offset", &pb.HistoryRequest{Reverse: true, Offset: 2, Limit: 3}, span(16, 18), true},
		{"reverse before", &pb.HistoryRequest{Reverse: true, BeforeSeq: 10, Limit: 3}, span(7, 9), true},
		{"reverse before, reaching the start", &pb.HistoryRequest{Reverse: true, BeforeSeq: 3, Limit: 5}, span(1, 2), false},
		{"reverse after", &pb.HistoryRequest{Reverse: true, AfterSeq: 18}, span(19, 20), false},
		{"reverse time", &pb.HistoryRequest{Reverse: true, EndTime: 1030, Limit: 2}, span(2, 3), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Conv = conv
			h := history(t, b, tc.req)
			if got := seqs(h.Messages); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) || h.More != tc.more {
				t.Errorf("seqs %v more=%v, want %v more=%v", got, h.More, tc.want, tc.more)
			}
		})
	}
	if h := history(t, b, &pb.HistoryRequest{Conv: storage.PrivateConv("nobody", "else")}); len(h.Messages) != 0 || h.More {
		t.Errorf("history of an empty conversation: %v", h)
	}
	if _, err := b.History(ctx(t), &pb.HistoryRequest{}); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("history without conversation: %v, want ErrInvalid", err)
	}
}

func testInbox(t *testing.T, open Opener) {
	b := fresh(t, open)
	mustAppend(t, b,
		chat("alice", "bob", "1", "a", 1),
		groupChat("carol", "g1", "2", "bob", "alice"),
		chat("carol", "bob", "3", "c", 3),
		chat("bob", "alice", "4", "b", 4),
		groupChat("alice", "g1", "5", "bob", "carol"),
	)
	all := inbox(t, b, &pb.InboxRequest{User: "bob"})
	var got []string
	var last int64
	for _, e := range all.Entries {
		got = append(got, e.Message.Id)
		if e.Cursor <= last {
			t.Errorf("cursor %d after %d: cursors must increase", e.Cursor, last)
		}
		last = e.Cursor
	}
	if !slices.Equal(got, []string{"1", "2", "3", "5"}) || all.More {
		t.Fatalf("bob's inbox %v more=%v, want [1 2 3 5]", got, all.More)
	}
	if m := all.Entries[1].Message; m.Conv != storage.GroupConv("g1") || m.Seq != 1 || m.Content != "to g1" {
		t.Errorf("inbox entry carries %v, want the stored group chat", m)
	}
	cases := []struct {
		name string
		req  *pb.InboxRequest
		want []string
		more bool
	}{
		{"limit", &pb.InboxRequest{User: "bob", Limit: 2}, []string{"1", "2"}, true},
		{"after", &pb.InboxRequest{User: "bob", After: all.Entries[1].Cursor}, []string{"3", "5"}, false},
		{"conv", &pb.InboxRequest{User: "bob", Conv: storage.GroupConv("g1")}, []string{"2", "5"}, false},
		{"conv and limit", &pb.InboxRequest{User: "bob", Conv: storage.PrivateConv("bob", "carol"), Limit: 1}, []string{"3"}, false},
		{"alice", &pb.InboxRequest{User: "alice"}, []string{"2", "4"}, false},
		{"nobody", &pb.InboxRequest{User: "dave"}, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := inbox(t, b, tc.req)
			var got []string
			for _, e := range res.Entries {
				got = append(got, e.Message.Id)
			}
			if !slices.Equal(got, tc.want) || res.More != tc.more {
				t.Errorf("%v more=%v, want %v more=%v", got, res.More, tc.want, tc.more)
			}
		})
	}
}

func testConfirm(t *testing.T, open Opener) {
	b := fresh(t, open)
	for i := 1; i <= 6; i++ {
		from := "alice"
		if i%2 == 0 {
			from = "carol"
		}
		mustAppend(t, b, chat(from, "bob", fmt.Sprint(i), "x", int64(i)))
	}
	page := inbox(t, b, &pb.InboxRequest{User: "bob", Limit: 3})
	confirm := func(req *pb.ConfirmRequest) int64 {
		t.Helper()
		res, err := b.Confirm(ctx(t), req)
		if err != nil {
			t.Fatalf("Confirm(%v): %v", req, err)
		}
		return res.Removed
	}
	if n := confirm(&pb.ConfirmRequest{User: "bob", Cursor: 0}); n != 0 {
		t.Errorf("confirm up to 0 removed %d", n)
	}
	if n := confirm(&pb.ConfirmRequest{User: "bob", Cursor: page.Entries[2].Cursor}); n != 3 {
		t.Errorf("confirm of the first page removed %d, want 3", n)
	}
	if n := confirm(&pb.ConfirmRequest{User: "bob", Cursor: page.Entries[2].Cursor}); n != 0 {
		t.Errorf("confirming again removed %d, want 0", n)
	}
	rest := inbox(t, b, &pb.InboxRequest{User: "bob"})
	if got := len(rest.Entries); got != 3 || rest.Entries[0].Message.Id != "4" {
		t.Fatalf("after confirm: %d entries, want 3 starting with id 4", got)
	}
	// Confirm only alice's conversation up to the last entry: carol's stay.
	lastCursor := rest.Entries[2].Cursor
	if n := confirm(&pb.ConfirmRequest{User: "bob", Cursor: lastCursor, Conv: storage.PrivateConv("alice", "bob")}); n != 1 {
		t.Errorf("confirm of alice's conversation removed %d, want 1", n)
	}
	left := inbox(t, b, &pb.InboxRequest{User: "bob"})
	var got []string
	for _, e := range left.Entries {
		got = append(got, e.Message.Id)
	}
	if !slices.Equal(got, []string{"4", "6"}) {
		t.Errorf("left %v, want [4 6]", got)
	}
	// New entries after a confirm keep increasing cursors.
	mustAppend(t, b, chat("alice", "bob", "7", "x", 7))
	if n := confirm(&pb.ConfirmRequest{User: "bob", Cursor: lastCursor}); n != 2 {
		t.Errorf("confirm up to %d removed %d, want 2", lastCursor, n)
	}
	final := inbox(t, b, &pb.InboxRequest{User: "bob"})
	if len(final.Entries) != 1 || final.Entries[0].Message.Id != "7" || final.Entries[0].Cursor <= lastCursor {
		t.Errorf("final inbox %v, want only id 7 with a cursor > %d", final.Entries, lastCursor)
	}
	if h := history(t, b, &pb.HistoryRequest{Conv: storage.PrivateConv("alice", "bob")}); len(h.Messages) != 4 {
		t.Errorf("confirm removed history: %d messages left of 4", len(h.Messages))
	}
}

func testRecall(t *testing.T, open Opener) {
	b := fresh(t, open)
	req := chat("alice", "bob", "r1", "secret", 100)
	req.Message.Extras = []byte(`{"x":1}`)
	mustAppend(t, b, req, chat("alice", "bob", "r2", "kept", 101))
	res, err := b.Recall(ctx(t), &pb.RecallRequest{From: "alice", Id: "r1", By: "alice", Time: 5000,
		NotBefore: 50, Receivers: []string{"bob"}, Conv: storage.PrivateConv("alice", "bob")})
	if err != nil {
		t.Fatalf("Recall: %v", err)
	}
	m, ev := res.Message, res.Event
	if res.Already || !m.Recalled || m.Content != "" || len(m.Extras) != 0 || m.RecallTime != 5000 || m.RecalledBy != "alice" || m.Seq != 1 {
		t.Errorf("recalled message %v: want recalled, content and extras cleared, seq 1", m)
	}
	if ev == nil || ev.Kind != storage.KindRecall || ev.Seq != 3 || ev.RecallId != "r1" || ev.RecallSeq != 1 || ev.Conv != m.Conv {
		t.Fatalf("recall event %v: want kind 1, seq 3, naming r1 seq 1", ev)
	}
	h := history(t, b, &pb.HistoryRequest{Conv: storage.PrivateConv("alice", "bob")})
	if got := seqs(h.Messages); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Fatalf("history after recall: %v, want [1 2 3]", got)
	}
	if !h.Messages[0].Recalled || h.Messages[0].Content != "" || h.Messages[1].Recalled || h.Messages[2].Kind != storage.KindRecall {
		t.Errorf("history after recall: %v", h.Messages)
	}
	sync := history(t, b, &pb.HistoryRequest{Conv: storage.PrivateConv("alice", "bob"), AfterSeq: 2})
	if len(sync.Messages) != 1 || sync.Messages[0].RecallId != "r1" {
		t.Errorf("a sync after seq 2 does not show the recall: %v", sync.Messages)
	}
	in := inbox(t, b, &pb.InboxRequest{User: "bob"})
	if n := len(in.Entries); n != 3 || !in.Entries[0].Message.Recalled || in.Entries[2].Message.Kind != storage.KindRecall {
		t.Errorf("bob's inbox after recall: %v, want r1 (recalled), r2 and the recall event", in.Entries)
	}
	again, err := b.Recall(ctx(t), &pb.RecallRequest{From: "alice", Id: "r1", By: "alice", Time: 6000, Receivers: []string{"bob"}})
	if err != nil || !again.Already || again.Message.RecallTime != 5000 || again.Event.GetSeq() != 3 {
		t.Errorf("second recall: %v, %v; want already, the first recall's time and event", again, err)
	}
	if h := history(t, b, &pb.HistoryRequest{Conv: storage.PrivateConv("alice", "bob")}); len(h.Messages) != 3 {
		t.Errorf("a second recall added entries: %d messages", len(h.Messages))
	}
	if r := mustAppend(t, b, chat("alice", "bob", "r1", "resent", 0))[0]; !r.Duplicate || r.Seq != 1 {
		t.Errorf("resend of a recalled chat: %v, want a duplicate of seq 1", r)
	}
}

func testRecallErrors(t *testing.T, open Opener) {
	b := fresh(t, open)
	mustAppend(t, b, chat("alice", "bob", "old", "x", 100)) // server time 101
	cases := []struct {
		name string
		req  *pb.RecallRequest
		want error
	}{
		{"unknown id", &pb.RecallRequest{From: "alice", Id: "nope", By: "alice", Time: 200}, storage.ErrNotFound},
		{"other sender", &pb.RecallRequest{From: "bob", Id: "old", By: "bob", Time: 200}, storage.ErrNotFound},
		{"other conversation", &pb.RecallRequest{From: "alice", Id: "old", By: "alice", Time: 200,
			Conv: storage.PrivateConv("alice", "carol")}, storage.ErrNotFound},
		{"window expired", &pb.RecallRequest{From: "alice", Id: "old", By: "alice", Time: 200, NotBefore: 150}, storage.ErrRecallWindow},
		{"no id", &pb.RecallRequest{From: "alice", By: "alice", Time: 200}, storage.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := b.Recall(ctx(t), tc.req); !errors.Is(err, tc.want) {
				t.Errorf("Recall: %v, want %v", err, tc.want)
			}
		})
	}
	if h := history(t, b, &pb.HistoryRequest{Conv: storage.PrivateConv("alice", "bob")}); len(h.Messages) != 1 || h.Messages[0].Recalled {
		t.Errorf("failed recalls changed the conversation: %v", h.Messages)
	}
}

func testGroups(t *testing.T, open Opener) {
	b := fresh(t, open)
	join := func(g, name string, members ...string) {
		t.Helper()
		if _, err := b.JoinGroup(ctx(t), &pb.JoinGroupRequest{GroupId: g, Name: name, Members: members}); err != nil {
			t.Fatalf("JoinGroup: %v", err)
		}
	}
	join("g2", "Second", "bob")
	join("g1", "First", "alice", "bob")
	join("g1", "", "carol")
	join("g1", "", "alice") // again
	join("g3", "Third", "dave")
	join("g3", "Renamed")
	if _, err := b.LeaveGroup(ctx(t), &pb.LeaveGroupRequest{GroupId: "g1", Member: "bob"}); err != nil {
		t.Fatalf("LeaveGroup: %v", err)
	}
	if _, err := b.LeaveGroup(ctx(t), &pb.LeaveGroupRequest{GroupId: "g1", Member: "nobody"}); err != nil {
		t.Fatalf("LeaveGroup of a non-member: %v", err)
	}
	var all []*pb.Group
	after := ""
	for pages := 0; ; pages++ {
		res, err := b.ListGroups(ctx(t), &pb.ListRequest{After: after, Limit: 2})
		if err != nil {
			t.Fatalf("ListGroups: %v", err)
		}
		all = append(all, res.Groups...)
		if !res.More || pages > 5 {
			break
		}
		after = res.Groups[len(res.Groups)-1].GroupId
	}
	want := []*pb.Group{
		{GroupId: "g1", Name: "First", Members: []string{"alice", "carol"}},
		{GroupId: "g2", Name: "Second", Members: []string{"bob"}},
		{GroupId: "g3", Name: "Renamed", Members: []string{"dave"}},
	}
	if len(all) != len(want) {
		t.Fatalf("groups %v, want %v", all, want)
	}
	for i := range want {
		slices.Sort(all[i].Members)
		if !proto.Equal(all[i], want[i]) {
			t.Errorf("group %d: %v, want %v", i, all[i], want[i])
		}
	}
}

func testUsers(t *testing.T, open Opener) {
	b := fresh(t, open)
	put := func(u *pb.User) {
		t.Helper()
		if _, err := b.PutUser(ctx(t), &pb.PutUserRequest{User: u}); err != nil {
			t.Fatalf("PutUser: %v", err)
		}
	}
	put(&pb.User{UserId: "carol"})
	put(&pb.User{UserId: "alice", Nick: "Alice", Avatar: "a.png"})
	put(&pb.User{UserId: "bob", Nick: "Bob"})
	put(&pb.User{UserId: "alice", Nick: "Ally"}) // keeps the avatar
	if _, err := b.PutUser(ctx(t), &pb.PutUserRequest{User: &pb.User{}}); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("PutUser without id: %v, want ErrInvalid", err)
	}
	first, err := b.ListUsers(ctx(t), &pb.ListRequest{Limit: 2})
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	second, err := b.ListUsers(ctx(t), &pb.ListRequest{After: "bob", Limit: 2})
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	got := append(first.Users, second.Users...)
	want := []*pb.User{{UserId: "alice", Nick: "Ally", Avatar: "a.png"}, {UserId: "bob", Nick: "Bob"}, {UserId: "carol"}}
	if !first.More || second.More || len(got) != 3 {
		t.Fatalf("users %v (more %v, %v), want %v in two pages", got, first.More, second.More, want)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("user %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func testReopen(t *testing.T, open Opener) {
	name := newName()
	b := open(t, name)
	mustAppend(t, b, chat("alice", "bob", "p1", "before", 1), chat("alice", "bob", "p2", "before", 2))
	if _, err := b.JoinGroup(ctx(t), &pb.JoinGroupRequest{GroupId: "g", Members: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutUser(ctx(t), &pb.PutUserRequest{User: &pb.User{UserId: "alice"}}); err != nil {
		t.Fatal(err)
	}
	first := inbox(t, b, &pb.InboxRequest{User: "bob"})
	if _, err := b.Confirm(ctx(t), &pb.ConfirmRequest{User: "bob", Cursor: first.Entries[0].Cursor}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b = open(t, name)
	t.Cleanup(func() { _ = b.Close() })
	res := mustAppend(t, b, chat("alice", "bob", "p1", "resent", 3), chat("bob", "alice", "p3", "after", 4))
	if !res[0].Duplicate || res[0].Seq != 1 || res[1].Seq != 3 {
		t.Errorf("after reopen: %v, want a duplicate of seq 1 and seq 3", res)
	}
	in := inbox(t, b, &pb.InboxRequest{User: "bob"})
	if len(in.Entries) != 1 || in.Entries[0].Message.Id != "p2" || in.Entries[0].Cursor <= first.Entries[0].Cursor {
		t.Errorf("bob's inbox after reopen: %v, want only p2", in.Entries)
	}
	if in := inbox(t, b, &pb.InboxRequest{User: "alice"}); len(in.Entries) != 1 || in.Entries[0].Message.Id != "p3" {
		t.Errorf("alice's inbox after reopen: %v, want p3", in.Entries)
	}
	if g, err := b.ListGroups(ctx(t), &pb.ListRequest{}); err != nil || len(g.Groups) != 1 {
		t.Errorf("groups after reopen: %v, %v", g, err)
	}
	if u, err := b.ListUsers(ctx(t), &pb.ListRequest{}); err != nil || len(u.Users) != 1 {
		t.Errorf("users after reopen: %v, %v", u, err)
	}
}
