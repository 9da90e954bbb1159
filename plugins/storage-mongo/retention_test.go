package storagemongo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestRetentionIndexes: Open creates the indexes of removal: inbox entries by the message
// they name, and messages by chat type and server time (Expire's query).
func TestRetentionIndexes(t *testing.T) {
	requireIndexes(t, "retindex", []wantIndex{
		{"inbox", bson.D{{Key: "ref", Value: int32(1)}}},
		{"messages", bson.D{{Key: "ct", Value: int32(1)}, {Key: "stime", Value: int32(1)}}},
	})
}

// wantIndex is an index a collection must have: its key.
type wantIndex struct {
	coll string
	key  bson.D
}

// requireIndexes opens a store on a fresh database (named from prefix) and requires each
// of want among its collections' indexes.
func requireIndexes(t *testing.T, prefix string, want []wantIndex) {
	t.Helper()
	s := opener(t)(t, fmt.Sprintf("%s%d", prefix, time.Now().UnixNano()%1e9)).(*Store)
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, w := range want {
		cur, err := s.db.Collection(w.coll).Indexes().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ixs []struct {
			Key bson.D `bson:"key"`
		}
		if err := cur.All(ctx, &ixs); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ix := range ixs {
			found = found || fmt.Sprint(ix.Key) == fmt.Sprint(w.key)
		}
		if !found {
			t.Errorf("%s: no index %v among %v", w.coll, w.key, ixs)
		}
	}
}
