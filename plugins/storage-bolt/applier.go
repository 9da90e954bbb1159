package storagebolt

import (
	"fmt"
	"os"
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
func (s *Store) apply(g *gen) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		msgs, dedup, inbox := tx.Bucket(bMsgs), tx.Bucket(bDedup), tx.Bucket(bInbox)
		for _, r := range g.recs {
			key := msgKey(r.conv, r.seq)
			if err := msgs.Put(key, r.msg); err != nil {
				return err
			}
			if r.dedup != nil {
				if err := dedup.Put(r.dedup, key); err != nil {
					return err
				}
			}
			for i, u := range r.recv {
				if err := inbox.Put(inboxKey(u, r.cursors[i]), key); err != nil {
					return err
				}
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
