package storagebolt

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// TestConversationsBackfill: a store written before conversation lists existed (no
// uconvs entries) lists its private conversations once opened by this version.
func TestConversationsBackfill(t *testing.T) {
	open := opener(t)
	s := open(t, "old")
	ctx := context.Background()
	for _, r := range []*pb.AppendRequest{
		{Message: &pb.Message{Conv: storage.PrivateConv("ann", "ben"), Id: "1", From: "ann", To: "ben", ServerTime: 10}, Receivers: []string{"ben"}},
		{Message: &pb.Message{Conv: storage.PrivateConv("ann", "cy"), Id: "2", From: "cy", To: "ann", ServerTime: 20}, Receivers: []string{"ann"}},
		{Message: &pb.Message{Conv: storage.GroupConv("g"), Id: "3", From: "ann", GroupId: "g", ServerTime: 30}},
	} {
		if _, err := s.Append(ctx, []*pb.AppendRequest{r}); err != nil {
			t.Fatal(err)
		}
	}
	dir := s.(*Store).dir
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Make it an old store: no uconvs, no mark.
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bUConvs); err != nil {
			return err
		}
		return tx.Bucket(bMeta).Delete(kUConvs)
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	s = open(t, "old")
	defer s.Close()
	for _, tc := range []struct {
		user string
		want []string
	}{
		{"ann", []string{storage.PrivateConv("ann", "cy"), storage.PrivateConv("ann", "ben")}},
		{"ben", []string{storage.PrivateConv("ann", "ben")}},
		{"dan", nil},
	} {
		res, err := s.Conversations(ctx, &pb.ConversationsRequest{User: tc.user})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range res.Conversations {
			got = append(got, c.Conv)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s's conversations after the backfill: %q, want %q", tc.user, got, tc.want)
		}
	}
}
