package storagebolt

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

func openAt(t *testing.T, dir string) *Store {
	t.Helper()
	cfg, _ := json.Marshal(Config{Dir: dir})
	s := &Store{}
	if _, err := s.Open(context.Background(), &pb.OpenRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	return s
}

// crash stops s as kill -9 would leave it: the log written, nothing more applied.
func crash(s *Store) {
	close(s.stop)
	<-s.done
	_ = s.cur.seg.f.Close()
	_ = s.db.Close()
	s.db = nil
}

func chatReq(from, to, id string) *pb.AppendRequest {
	return &pb.AppendRequest{Message: &pb.Message{Conv: storage.PrivateConv(from, to), Id: id, From: from, To: to,
		ChatType: storage.ChatTypePrivate, Content: "c-" + id, CreateTime: 1, ServerTime: 2}, Receivers: []string{to}}
}

// TestLogReplay: chats acknowledged but only in the log when the process dies are there
// after a restart, once, with their seqs and inbox entries; a torn record at the end of
// the log (a write that was never acknowledged) is ignored.
func TestLogReplay(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openAt(t, dir)
	if _, err := s.Append(ctx, []*pb.AppendRequest{chatReq("a", "b", "1"), chatReq("a", "b", "2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.History(ctx, &pb.HistoryRequest{Conv: storage.PrivateConv("a", "b")}); err != nil { // applies 1, 2
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, []*pb.AppendRequest{chatReq("a", "b", "3"), chatReq("b", "a", "4")}); err != nil {
		t.Fatal(err)
	}
	seg := s.cur.seg.path
	crash(s)
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write([]byte{0, 0, 0, 40, 1, 2, 3, 4, 5}) // torn record
	_ = f.Close()

	for round := range 2 { // replay, then a clean reopen
		s = openAt(t, dir)
		h, err := s.History(ctx, &pb.HistoryRequest{Conv: storage.PrivateConv("a", "b")})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(h.Messages); len(got) != 4 || got[0] != "1" || got[3] != "4" || h.Messages[3].Seq != 4 {
			t.Fatalf("round %d: history %v", round, got)
		}
		in, err := s.Inbox(ctx, &pb.InboxRequest{User: "b"})
		if err != nil || len(in.Entries) != 3 || in.Entries[2].Cursor != 3 {
			t.Fatalf("round %d: inbox of b: %v %v", round, in, err)
		}
		res, err := s.Append(ctx, []*pb.AppendRequest{chatReq("a", "b", "3")})
		if err != nil || !res[0].Duplicate || res[0].Seq != 3 {
			t.Fatalf("round %d: resend after replay: %v %v", round, res, err)
		}
		if round == 0 {
			crash(s)
		} else if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if segs, _ := segments(dir); len(segs) != 0 {
		t.Errorf("log segments left after a clean close: %v", segs)
	}
}

func ids(ms []*pb.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Id)
	}
	return out
}
