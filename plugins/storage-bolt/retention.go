package storagebolt

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Retention and erasure (storage.Retainer). One more bucket:
//
//	seqfloor  conv -> the last seq the conversation had when messages of it were removed
//
// so that a conversation whose every message expired continues with the next seq, never
// reusing one (txn.put and overlay.lastSeq take the greater of it and the last key).
// Expire finds the conversations with a due message in the expiry index (oldest.go: by
// the time of each one's first message) and removes each one's expired head, which is in
// seq order and so, but for clock steps, in time order.
var bSeqFloor = []byte("seqfloor")

func init() { buckets = append(buckets, bSeqFloor) }

var _ storage.Retainer = (*Store)(nil)

// defaultExpireLimit bounds an Expire that gives no limit.
const defaultExpireLimit = 1000

// seqFloor is the seq below which conv's next seq may not go.
func seqFloor(tx *bolt.Tx, conv string) int64 {
	return int64(getU64(tx.Bucket(bSeqFloor), []byte(conv)))
}

// Expire implements storage.Retainer.
func (s *Store) Expire(_ context.Context, req *pb.ExpireRequest) (*pb.ExpireResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if err := storage.CheckExpire(req); err != nil {
		return nil, err
	}
	limit := int(req.Limit)
	if limit == 0 {
		limit = defaultExpireLimit
	}
	res := &pb.ExpireResponse{}
	err := s.write(func(tx *bolt.Tx) error {
		keys, more, err := dueKeys(tx, storage.ConvPrefix(req.ChatType), req.BeforeMs, limit)
		if err != nil {
			return err
		}
		n, in, err := removeMsgs(tx, keys)
		res.Removed, res.InboxRemoved, res.More = n, in, more
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: expire: %w", err)
	}
	return res, nil
}

// dueKeys lists up to limit keys of due messages of the conversations of kind: the
// head of each conversation whose first message is older than before, in seq order up
// to its first message that is not due. It visits the expiry index (oldest.go) from the
// oldest first message on, so only conversations with a due message. more reports that
// it stopped at limit with another message due. An entry that does not match its
// conversation's first message (an older version of the plugin removed messages after
// the index was built) is corrected on the way.
func dueKeys(tx *bolt.Tx, kind string, before int64, limit int) (keys [][]byte, more bool, err error) {
	pk := strKey(kind)
	type fix struct {
		conv string
		t    int64
	}
	var fixes []fix
	mc := tx.Bucket(bMsgs).Cursor()
	ic := tx.Bucket(bOldest).Cursor()
	for ik, _ := ic.Seek(pk); ik != nil && bytes.HasPrefix(ik, pk) && !more; ik, _ = ic.Next() {
		t, conv, err := parseOldestKey(ik, pk)
		if err != nil {
			return nil, false, fmt.Errorf("expiry index key %x: %w", ik, err)
		}
		if t >= before {
			break
		}
		ck, first := strKey(conv), true
		for k, v := mc.Seek(ck); k != nil && bytes.HasPrefix(k, ck); k, v = mc.Next() {
			m := &pb.Message{}
			if err := proto.Unmarshal(v, m); err != nil {
				return nil, false, fmt.Errorf("decode message %x: %w", k, err)
			}
			if first && m.ServerTime != t {
				fixes = append(fixes, fix{conv, t})
			}
			first = false
			if m.ServerTime >= before {
				break
			}
			if len(keys) == limit {
				more = true
				break
			}
			keys = append(keys, slices.Clone(k))
		}
		if first { // no message left: a stale entry
			fixes = append(fixes, fix{conv, t})
		}
	}
	for _, f := range fixes {
		if err := reindex(tx, f.conv, f.t, true); err != nil {
			return nil, false, err
		}
	}
	return keys, more, nil
}

// EraseUser implements storage.Retainer.
func (s *Store) EraseUser(_ context.Context, req *pb.EraseUserRequest) (*pb.EraseUserResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if req.User == "" {
		return nil, fmt.Errorf("storage-bolt: erase user: empty user: %w", storage.ErrInvalid)
	}
	if err := s.backfill(); err != nil { // a store older than uconvs: list them first
		return nil, fmt.Errorf("storage-bolt: erase user %s: list private conversations: %w", req.User, err)
	}
	res := &pb.EraseUserResponse{}
	err := s.write(func(tx *bolt.Tx) error {
		user := strKey(req.User)
		var keys [][]byte
		// Every private conversation of the user, whole.
		var convs []string
		uc := tx.Bucket(bUConvs).Cursor()
		for k, _ := uc.Seek(user); k != nil && bytes.HasPrefix(k, user); k, _ = uc.Next() {
			conv, _, err := readStr(k[len(user):])
			if err != nil {
				return err
			}
			convs = append(convs, conv)
		}
		mc := tx.Bucket(bMsgs).Cursor()
		for _, conv := range convs {
			ck := strKey(conv)
			for k, _ := mc.Seek(ck); k != nil && bytes.HasPrefix(k, ck); k, _ = mc.Next() {
				keys = append(keys, slices.Clone(k))
			}
			_, a, b, err := storage.ParseConv(conv)
			if err != nil {
				return err
			}
			for _, u := range []string{a, b} {
				if err := deleteAll(tx.Bucket(bUConvs), [][]byte{pairKey(u, conv)}); err != nil {
					return err
				}
				if err := deleteAll(tx.Bucket(bCursors), [][]byte{pairKey(u, conv)}); err != nil {
					return err
				}
			}
		}
		res.Conversations = int64(len(convs))
		// Every message the user sent elsewhere (groups), found by its dedup entries, and
		// the recall events naming them.
		dc := tx.Bucket(bDedup).Cursor()
		for k, v := dc.Seek(user); k != nil && bytes.HasPrefix(k, user); k, v = dc.Next() {
			conv, _, err := readStr(v)
			if err != nil {
				return err
			}
			if slices.Contains(convs, conv) {
				continue
			}
			keys = append(keys, slices.Clone(v))
			m, err := loadMsg(tx.Bucket(bMsgs), v)
			if err != nil {
				return err
			}
			if m.RecallSeq > 0 { // the recall event naming it goes too
				keys = append(keys, msgKey(conv, m.RecallSeq))
			}
		}
		n, in, err := removeMsgs(tx, keys)
		if err != nil {
			return err
		}
		res.Messages, res.Inbox = n, in
		// The user's own inbox, cursors, record and memberships.
		inbox := tx.Bucket(bInbox)
		own := prefixed(inbox, user)
		if err := deleteAll(inbox, own); err != nil {
			return err
		}
		res.Inbox += int64(len(own))
		if err := deleteAll(tx.Bucket(bCursors), prefixed(tx.Bucket(bCursors), user)); err != nil {
			return err
		}
		if err := deleteAll(tx.Bucket(bUsers), [][]byte{[]byte(req.User)}); err != nil {
			return err
		}
		var members [][]byte
		err = tx.Bucket(bMembers).ForEach(func(k, _ []byte) error {
			if _, rest, err := readStr(k); err == nil && bytes.Equal(rest, user) {
				members = append(members, slices.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		res.Groups = int64(len(members))
		if err := deleteAll(tx.Bucket(bUGroups), prefixed(tx.Bucket(bUGroups), user)); err != nil {
			return err
		}
		return deleteAll(tx.Bucket(bMembers), members)
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: erase user %s: %w", req.User, err)
	}
	return res, nil
}

// write runs fn in a write transaction after the logged chats are applied, with Append,
// Recall and Confirm held back (they share s.mu).
func (s *Store) write(fn func(tx *bolt.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flushLocked(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// removeMsgs deletes the messages at keys, their dedup entries and the inbox entries
// naming them (of the users of a private conversation, of a group's current members;
// entries of members who left are skipped by Inbox). It records each conversation's last
// seq as its floor and moves its expiry index entry to its new first message. It answers
// the messages and inbox entries removed.
func removeMsgs(tx *bolt.Tx, keys [][]byte) (msgs, inbox int64, err error) {
	mb, db := tx.Bucket(bMsgs), tx.Bucket(bDedup)
	gone := map[string]map[string]bool{} // conv -> message keys
	type first struct {
		t   int64
		had bool
	}
	firsts := map[string]first{} // conv -> its first message's time before the removal
	for _, k := range keys {
		v := mb.Get(k)
		if v == nil {
			continue
		}
		m := &pb.Message{}
		if err := proto.Unmarshal(v, m); err != nil {
			return 0, 0, fmt.Errorf("decode message %x: %w", k, err)
		}
		if gone[m.Conv] == nil {
			gone[m.Conv] = map[string]bool{}
			f, err := firstMsg(mb, m.Conv)
			if err != nil {
				return 0, 0, err
			}
			firsts[m.Conv] = first{f.GetServerTime(), f != nil}
			last := max(lastU64(mb, strKey(m.Conv)), seqFloor(tx, m.Conv))
			if err := putU64(tx.Bucket(bSeqFloor), []byte(m.Conv), uint64(last)); err != nil {
				return 0, 0, err
			}
		}
		gone[m.Conv][string(k)] = true
		if dk := pairKey(m.From, m.Id); m.Kind == storage.KindChat && bytes.Equal(db.Get(dk), k) {
			if err := db.Delete(dk); err != nil {
				return 0, 0, err
			}
		}
		if err := mb.Delete(k); err != nil {
			return 0, 0, err
		}
		msgs++
	}
	for conv, f := range firsts {
		if err := reindex(tx, conv, f.t, f.had); err != nil {
			return 0, 0, err
		}
	}
	byUser := map[string]map[string]bool{} // user -> message keys gone: one inbox scan per user
	for conv, set := range gone {
		var users []string
		g, a, b, err := storage.ParseConv(conv)
		switch {
		case err != nil:
			continue
		case g == "":
			users = []string{a, b}
		default:
			for _, k := range prefixed(tx.Bucket(bMembers), strKey(g)) {
				if u, _, err := readStr(k[len(strKey(g)):]); err == nil {
					users = append(users, u)
				}
			}
		}
		for _, u := range users {
			if byUser[u] == nil {
				byUser[u] = map[string]bool{}
			}
			maps.Copy(byUser[u], set)
		}
	}
	for u, set := range byUser {
		n, err := dropInbox(tx, u, func(v []byte) bool { return set[string(v)] })
		if err != nil {
			return 0, 0, err
		}
		inbox += n
	}
	return msgs, inbox, nil
}

// dropInbox deletes user's inbox entries whose value (a message key) matches, keeping
// the user's last cursor as its floor so that no cursor is handed out twice.
func dropInbox(tx *bolt.Tx, user string, match func(v []byte) bool) (int64, error) {
	b, prefix := tx.Bucket(bInbox), strKey(user)
	var del [][]byte
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if match(v) {
			del = append(del, slices.Clone(k))
		}
	}
	if len(del) == 0 {
		return 0, nil
	}
	floor := tx.Bucket(bInboxSeq)
	if last := lastU64(b, prefix); last > int64(getU64(floor, []byte(user))) {
		if err := putU64(floor, []byte(user), uint64(last)); err != nil {
			return 0, err
		}
	}
	return int64(len(del)), deleteAll(b, del)
}

// prefixed lists the keys of b that start with prefix.
func prefixed(b *bolt.Bucket, prefix []byte) [][]byte {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, slices.Clone(k))
	}
	return keys
}

// deleteAll deletes keys from b.
func deleteAll(b *bolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
