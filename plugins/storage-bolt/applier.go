package storagebolt

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

func (s *Store) kickApplier() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// applier writes generations into bbolt, one at a time, while Append logs the next one.
func (s *Store) applier() {
	defer close(s.done)
	t := time.NewTicker(applyEvery)
	defer t.Stop()
	for {
		select {
		case <-s.kick:
		case <-t.C:
		case <-s.stop:
			return
		}
		for s.applyOnce() {
		}
	}
}

// applyOnce freezes the current generation and applies it; false when there was nothing
// to do (or the store is broken).
func (s *Store) applyOnce() bool {
	s.mu.Lock()
	if s.broken != nil || s.frozen != nil || len(s.cur.recs) == 0 {
		s.mu.Unlock()
		return false
	}
	seg, err := createSegment(s.dir, s.lsn+1, s.nosync)
	if err != nil {
		s.broken = err
		s.applied.Broadcast()
		s.mu.Unlock()
		return false
	}
	g := s.cur
	s.frozen, s.cur = g, newGen(seg)
	s.mu.Unlock()

	err = s.apply(g)

	s.mu.Lock()
	if err != nil {
		s.broken = fmt.Errorf("storage-bolt: apply log: %w", err)
	} else {
		s.frozen = nil
		s.applLSN = g.recs[len(g.recs)-1].lsn
	}
	s.applied.Broadcast()
	again := err == nil && len(s.cur.recs) >= applyAt
	s.mu.Unlock()
	if err == nil {
		_ = g.seg.f.Close()
		_ = os.Remove(g.seg.path)
	}
	return again
}

// apply writes the records of g into bbolt in one durable transaction.
// The keys of a generation are put in key order, bucket by bucket: a generation's chats
// spread over many conversations and users, and puts in order walk the B-tree once
// (each put's search starts where the previous one ended up in the page cache) instead
// of seeking at random.
func (s *Store) apply(g *gen) error {
	var msgs, dedup, inbox []kv
	recKeys := make([][]byte, 0, len(g.recs)) // the msgs key of each record, in order
	for _, r := range g.recs {
		key := msgKey(r.conv, r.seq)
		recKeys = append(recKeys, key)
		msgs = append(msgs, kv{key, r.msg})
		if r.dedup != nil {
			dedup = append(dedup, kv{r.dedup, key})
		}
		for i, u := range r.recv {
			inbox = append(inbox, kv{inboxKey(u, r.cursors[i]), key})
		}
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range []struct {
			name []byte
			kvs  []kv
		}{{bMsgs, msgs}, {bDedup, dedup}, {bInbox, inbox}} {
			if err := putSorted(tx.Bucket(b.name), b.kvs); err != nil {
				return err
			}
		}
		for i, r := range g.recs { // after msgs: a conversation's first message is stored
			if err := indexFirst(tx, r.conv, r.seq, recKeys[i], r.msg); err != nil {
				return err
			}
		}
		if err := applyReceipts(tx, g.recs); err != nil {
			return err
		}
		if err := applyReadFanout(tx, g.recs); err != nil {
			return err
		}
		return putU64(tx.Bucket(bMeta), kAppliedLS, g.recs[len(g.recs)-1].lsn)
	})
}

// kv is one key and value to put.
type kv struct{ k, v []byte }

// putSorted puts kvs into b in key order; of equal keys the last one wins, as in the
// order they came.
func putSorted(b *bolt.Bucket, kvs []kv) error {
	slices.SortStableFunc(kvs, func(x, y kv) int { return bytes.Compare(x.k, y.k) })
	for _, p := range kvs {
		if err := b.Put(p.k, p.v); err != nil {
			return err
		}
	}
	return nil
}

// waitApplied waits (mu held) until everything logged up to lsn is in bbolt.
func (s *Store) waitApplied(lsn uint64) error {
	for s.broken == nil && s.applLSN < lsn {
		s.kickApplier()
		s.applied.Wait()
	}
	return s.broken
}

// flushLocked (mu held) applies everything logged, holding new Appends back meanwhile:
// on return, bbolt holds every chat and the generations are empty until mu is released.
func (s *Store) flushLocked() error {
	s.pausing++
	err := s.waitApplied(s.lsn)
	s.pausing--
	s.applied.Broadcast()
	return err
}

// syncReads waits until everything appended so far is readable from bbolt.
func (s *Store) syncReads() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waitApplied(s.lsn)
}
