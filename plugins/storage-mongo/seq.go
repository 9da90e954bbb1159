package storagemongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"
)

// Sequence numbers are claimed, not reserved: a document of the messages collection has
// the _id conv#seq, so inserting it is what takes seq, and the unique _id refuses a seq
// someone else (another plugin process sharing the database) took first. A process
// computes the next seq from the last one it knows, inserts, and on a duplicate _id
// learns the real last seq and tries again. Nothing is reserved ahead of the insert, so a
// process killed at any point leaves no hole: a seq exists exactly when its chat does,
// and seq k is only ever tried once k-1 is stored (see docs/storage.md, "Several
// gateways on one store").
//
// The last seq known comes from a hint document per conversation in counters
// (_id "l:" + conv, raised with $max after each insert): a lower bound of the real last
// seq, read with one _id lookup per batch. A stale hint (its writer died, or a $max was
// lost to a concurrent one) only costs a duplicate _id and one query for the real last.

// maxClaimRounds bounds the insert attempts of one batch: each round stores at least one
// chat or learns a newer last seq of a conversation, so only heavy contention on one
// conversation from many processes comes near it.
const maxClaimRounds = 1000

func hintID(conv string) string { return "l:" + conv }

// seqHints reads the last-seq hints of convs (missing ones are 0).
func (s *Store) seqHints(ctx context.Context, convs []string) (map[string]int64, error) {
	out := make(map[string]int64, len(convs))
	ids := make([]string, len(convs))
	for i, c := range convs {
		ids[i], out[c] = hintID(c), 0
	}
	if len(ids) == 0 {
		return out, nil
	}
	cur, err := s.counters.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, fmt.Errorf("seq hints: %w", err)
	}
	var docs []struct {
		ID  string `bson:"_id"`
		Seq int64  `bson:"seq"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("seq hints: %w", err)
	}
	for _, d := range docs {
		out[d.ID[len("l:"):]] = d.Seq
	}
	return out, nil
}

// raiseHints records the last seqs written (conv -> seq); a hint never goes down. One
// single-document upsert per conversation, a few side by side (FerretDB, which the tests
// run on, wedged under a multi-statement bulk of them).
func (s *Store) raiseHints(ctx context.Context, last map[string]int64) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for conv, seq := range last {
		g.Go(func() error {
			_, err := s.counters.UpdateOne(gctx, bson.D{{Key: "_id", Value: hintID(conv)}},
				bson.D{{Key: "$max", Value: bson.D{{Key: "seq", Value: seq}}}}, options.UpdateOne().SetUpsert(true))
			if err != nil && !mongo.IsDuplicateKeyError(err) { // two processes upserting one hint at once
				return fmt.Errorf("seq hint of %s: %w", conv, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// lastSeq reads the last seq stored in conv (0 when it has none).
func (s *Store) lastSeq(ctx context.Context, conv string) (int64, error) {
	var doc struct {
		Seq int64 `bson:"seq"`
	}
	err := s.msgs.FindOne(ctx, bson.D{{Key: "conv", Value: conv}},
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}}).SetProjection(bson.D{{Key: "seq", Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last seq of %s: %w", conv, err)
	}
	return doc.Seq, nil
}

// firstDuplicate returns the index of the document an ordered insert stopped at, when it
// stopped on a duplicate key (the documents before it are stored, none after it).
func firstDuplicate(err error) (int, bool) {
	var bw mongo.BulkWriteException
	if !errors.As(err, &bw) || bw.WriteConcernError != nil || len(bw.WriteErrors) == 0 {
		return 0, false
	}
	first := bw.WriteErrors[0]
	for _, e := range bw.WriteErrors[1:] {
		if e.Index < first.Index {
			first = e
		}
	}
	if first.Code != 11000 {
		return 0, false
	}
	return first.Index, true
}

// claim stores docs (dedup keys and conversations set; their order is kept within each
// conversation), giving each the next seq of its conversation, and returns, by dedup key,
// the chats that turned out to be stored already by another process meanwhile (those docs
// are not stored again). On success every other doc has its Seq and ID.
func (s *Store) claim(ctx context.Context, docs []*msgDoc) (map[string]*msgDoc, error) {
	taken := map[string]*msgDoc{}
	if len(docs) == 0 {
		return taken, nil
	}
	var convs []string
	seen := map[string]bool{}
	for _, d := range docs {
		if !seen[d.Conv] {
			seen[d.Conv] = true
			convs = append(convs, d.Conv)
		}
	}
	last, err := s.seqHints(ctx, convs)
	if err != nil {
		return nil, err
	}
	written := map[string]int64{}
	pending := docs
	batch := make([]any, 0, len(docs))
	for round := 0; len(pending) > 0; round++ {
		if round == maxClaimRounds {
			return nil, fmt.Errorf("claim seqs: %d chats still conflicting after %d attempts", len(pending), round)
		}
		if round > 0 && round%10 == 0 { // many processes on one conversation: let others finish
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(round/10) * time.Millisecond):
			}
		}
		next := make(map[string]int64, len(last))
		batch = batch[:0]
		for _, d := range pending {
			if _, ok := next[d.Conv]; !ok {
				next[d.Conv] = last[d.Conv]
			}
			next[d.Conv]++
			d.Seq = next[d.Conv]
			d.ID = docID(d.Conv, d.Seq)
			batch = append(batch, d)
		}
		_, err := s.msgs.InsertMany(ctx, batch, options.InsertMany().SetOrdered(true))
		k := len(pending)
		if err != nil {
			var ok bool
			if k, ok = firstDuplicate(err); !ok || k >= len(pending) {
				return nil, fmt.Errorf("insert: %w", err)
			}
		}
		for _, d := range pending[:k] {
			last[d.Conv], written[d.Conv] = d.Seq, d.Seq
		}
		if err == nil {
			break
		}
		// Stopped at pending[k]: its dedup key or its seq is taken. Chats from k on that
		// another process stored meanwhile are its duplicates; the others go again.
		rest := pending[k:]
		keys := make([]string, len(rest))
		for i, d := range rest {
			keys[i] = d.DK
		}
		stored, err := s.findByDK(ctx, keys)
		if err != nil {
			return nil, fmt.Errorf("dedup lookup: %w", err)
		}
		if stored[rest[0].DK] == nil { // the seq is taken: learn the real last one
			l, err := s.lastSeq(ctx, rest[0].Conv)
			if err != nil {
				return nil, err
			}
			last[rest[0].Conv] = max(last[rest[0].Conv], l)
		}
		pending = make([]*msgDoc, 0, len(rest))
		for _, d := range rest {
			if st := stored[d.DK]; st != nil {
				taken[d.DK] = st
				continue
			}
			pending = append(pending, d)
		}
	}
	if err := s.raiseHints(ctx, written); err != nil {
		return nil, err
	}
	return taken, nil
}
