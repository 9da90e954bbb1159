package storagebolt

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Read fan-out (large groups): a chat flagged Message.ReadFanout is logged and applied
// like any other but without inbox entries; Inbox pulls it into the inboxes of members.
// Two more buckets:
//
//	ugroups   user, group -> floor: the seq of the group up to which the user has what
//	          it gets (the group's last seq at the join, raised by pulls and by delivered
//	          receipts); the user's memberships, by user
//	rfseq     group conv  -> the seq of its last read fan-out chat (written by the applier)
//
// A pull runs in bbolt transactions under s.mu after the log is applied, each of at most
// pullBatch chats examined (so that a member who missed many chats does not hold chats
// back for long: s.mu is released between two): the new entries and the raised floors
// of one commit together or not at all, so a chat is never pulled twice nor lost. An
// Inbox with nothing to pull (every group's rfseq at or below the user's floor, checked
// in a read transaction first) writes nothing.
var (
	bUGroups = []byte("ugroups")
	bRFSeq   = []byte("rfseq")
)

// kUGroups (in meta) says ugroups lists every membership of members: a store written
// before ugroups existed gets it built at Open (floors 0: no read fan-out chat is older).
var kUGroups = []byte("ugroups-built")

func init() { buckets = append(buckets, bUGroups, bRFSeq) }

// backfillUGroups lists the memberships of members in ugroups once (in Open's
// transaction).
func backfillUGroups(tx *bolt.Tx) error {
	meta := tx.Bucket(bMeta)
	if meta.Get(kUGroups) != nil {
		return nil
	}
	ug := tx.Bucket(bUGroups)
	err := tx.Bucket(bMembers).ForEach(func(k, _ []byte) error {
		g, rest, err := readStr(k)
		if err != nil {
			return err
		}
		u, rest, err := readStr(rest)
		if err != nil || len(rest) != 0 {
			return fmt.Errorf("member key %x: %w", k, errKey)
		}
		return putU64(ug, pairKey(u, g), 0)
	})
	if err != nil {
		return fmt.Errorf("list memberships by user: %w", err)
	}
	return meta.Put(kUGroups, []byte{1})
}

// applyReadFanout (in the applier's transaction) records the last read fan-out chat of
// each group in recs.
func applyReadFanout(tx *bolt.Tx, recs []*rec) error {
	var b *bolt.Bucket
	for _, r := range recs {
		if !r.rf {
			continue
		}
		if b == nil {
			b = tx.Bucket(bRFSeq)
		}
		if int64(getU64(b, []byte(r.conv))) < r.seq {
			if err := putU64(b, []byte(r.conv), uint64(r.seq)); err != nil {
				return err
			}
		}
	}
	return nil
}

// due reports whether user has read fan-out chats to pull (a read transaction).
func due(tx *bolt.Tx, user string) bool {
	rf := tx.Bucket(bRFSeq)
	prefix := strKey(user)
	c := tx.Bucket(bUGroups).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		g, _, err := readStr(k[len(prefix):])
		if err != nil {
			continue
		}
		floor, _ := readU64(v)
		if getU64(rf, []byte(storage.GroupConv(g))) > floor {
			return true
		}
	}
	return false
}

// pullBatch bounds the messages one pull transaction examines.
var pullBatch = 4096 // a variable for tests

// pull adds to user's inbox the read fan-out chats of the user's groups above the user's
// floors, if any are due.
func (s *Store) pull(user string) error {
	var need bool
	if err := s.db.View(func(tx *bolt.Tx) error { need = due(tx, user); return nil }); err != nil || !need {
		return err
	}
	for more := true; more; {
		if err := s.pullOnce(user, &more); err != nil {
			return err
		}
	}
	return nil
}

// pullOnce runs one pull transaction; *more reports that it stopped at pullBatch.
func (s *Store) pullOnce(user string, more *bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flushLocked(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) (err error) {
		*more, err = pullTx(tx, user, pullBatch)
		return err
	})
}

// pullTx is the pull, in a write transaction with everything logged applied, examining
// at most budget messages; more reports that it stopped there (floors raised to what it
// examined).
func pullTx(tx *bolt.Tx, user string, budget int) (more bool, err error) {
	t := newTxn(tx)
	rf, ug := tx.Bucket(bRFSeq), tx.Bucket(bUGroups)
	prefix := strKey(user)
	type raise struct {
		key   []byte
		floor uint64
	}
	var raises []raise
	c := ug.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && !more; k, v = c.Next() {
		g, _, err := readStr(k[len(prefix):])
		if err != nil {
			return false, fmt.Errorf("membership key %x: %w", k, err)
		}
		floor, _ := readU64(v)
		conv := storage.GroupConv(g)
		last := getU64(rf, []byte(conv))
		if last <= floor {
			continue
		}
		ck := strKey(conv)
		mc := t.msgs.Cursor()
		upTo := last
		for mk, mv := mc.Seek(msgKey(conv, int64(floor)+1)); mk != nil && bytes.HasPrefix(mk, ck); mk, mv = mc.Next() {
			seq, err := readU64(mk[len(ck):])
			if err != nil {
				return false, fmt.Errorf("message key %x: %w", mk, err)
			}
			if seq > last {
				break
			}
			if budget == 0 {
				upTo, more = seq-1, true
				break
			}
			budget--
			m := &pb.Message{}
			if err := proto.Unmarshal(mv, m); err != nil {
				return false, fmt.Errorf("decode message %x: %w", mk, err)
			}
			if !m.ReadFanout || m.Kind != storage.KindChat || m.From == user {
				continue
			}
			cur, ok := t.cursors[user]
			if !ok {
				cur = t.lastCursor(user)
			}
			cur++
			t.cursors[user] = cur
			if err := t.inbox.Put(inboxKey(user, cur), bytes.Clone(mk)); err != nil {
				return false, err
			}
		}
		if upTo > floor {
			raises = append(raises, raise{bytes.Clone(k), upTo})
		}
	}
	for _, r := range raises { // not while iterating ug
		if err := putU64(ug, r.key, r.floor); err != nil {
			return false, err
		}
	}
	return more, nil
}

// raiseFloor (in SetCursor's transaction) raises user's floor of conv, a group the user
// is a member of, to delivered: chats delivered by receipt are never pulled.
func raiseFloor(tx *bolt.Tx, user, conv string, delivered int64) error {
	g, _, _, err := storage.ParseConv(conv)
	if err != nil || g == "" {
		return nil
	}
	ug := tx.Bucket(bUGroups)
	k := pairKey(user, g)
	v := ug.Get(k)
	if v == nil {
		return nil
	}
	if floor, _ := readU64(v); int64(floor) >= delivered {
		return nil
	}
	return putU64(ug, k, uint64(delivered))
}

// joinSeq is the last seq of group's conversation, counting what is logged and not yet
// applied: a member joining now gets the read fan-out chats after it.
func (s *Store) joinSeq(group string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := &overlay{s: s}
	defer o.close()
	return o.lastSeq(storage.GroupConv(group))
}
