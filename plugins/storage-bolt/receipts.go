package storagebolt

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Receipts and conversation lists. Two more buckets:
//
//	cursors   user, conv -> delivered, read (two big-endian integers)
//	uconvs    user, conv -> empty: the user's private conversations
//
// Both are written by the applier with the chats (applyReceipts): the sender's cursors
// are raised to the chat's seq, and both users of a private conversation get it listed.
// A conversation's head (its last chat) is found by a seek on msgs.
var (
	bCursors = []byte("cursors")
	bUConvs  = []byte("uconvs")
)

func init() { buckets = append(buckets, bCursors, bUConvs) }

// kUConvs (in meta) says uconvs lists every private conversation: a store written by a
// version without receipts gets it built on the first conversation list (backfill).
var kUConvs = []byte("uconvs-built")

// backfill lists the private conversations of msgs in uconvs once, for a store written
// before uconvs existed: one seek per conversation.
func (s *Store) backfill() error {
	var done bool
	if err := s.db.View(func(tx *bolt.Tx) error {
		done = tx.Bucket(bMeta).Get(kUConvs) != nil
		return nil
	}); err != nil || done {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flushLocked(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		uconvs, c := tx.Bucket(bUConvs), tx.Bucket(bMsgs).Cursor()
		for k, _ := c.First(); k != nil; {
			conv, _, err := readStr(k)
			if err != nil {
				return err
			}
			if g, a, b, err := storage.ParseConv(conv); err == nil && g == "" {
				for _, u := range []string{a, b} {
					if err := uconvs.Put(pairKey(u, conv), nil); err != nil {
						return err
					}
				}
			}
			k, _ = c.Seek(appendU64(strKey(conv), ^uint64(0))) // past the conversation
			if k != nil && bytes.HasPrefix(k, strKey(conv)) {
				k, _ = c.Next()
			}
		}
		return tx.Bucket(bMeta).Put(kUConvs, []byte{1})
	})
}

func getCursor(b *bolt.Bucket, user, conv string) *pb.Cursor {
	c := &pb.Cursor{Conv: conv}
	if v := b.Get(pairKey(user, conv)); len(v) == 16 {
		d, _ := readU64(v[:8])
		r, _ := readU64(v[8:])
		c.Delivered, c.Read = int64(d), int64(r)
	}
	return c
}

func putCursor(b *bolt.Bucket, user string, c *pb.Cursor) error {
	return b.Put(pairKey(user, c.Conv), appendU64(appendU64(make([]byte, 0, 16), uint64(c.Delivered)), uint64(c.Read)))
}

// applyReceipts (in the applier's transaction) raises each sender's cursors to the seq of
// its chats and lists private conversations for both users.
func applyReceipts(tx *bolt.Tx, recs []*rec) error {
	type uc struct{ user, conv string }
	raise := map[uc]int64{}
	for _, r := range recs {
		if r.dedup == nil {
			continue
		}
		from, _, err := readStr(r.dedup)
		if err != nil {
			return err
		}
		k := uc{from, r.conv}
		raise[k] = max(raise[k], r.seq)
	}
	cursors, uconvs := tx.Bucket(bCursors), tx.Bucket(bUConvs)
	listed := map[string]bool{}
	for k, seq := range raise {
		old := getCursor(cursors, k.user, k.conv)
		if c := storage.RaiseCursor(old, seq, seq); c.Read != old.Read || c.Delivered != old.Delivered {
			if err := putCursor(cursors, k.user, c); err != nil {
				return err
			}
		}
		if listed[k.conv] {
			continue
		}
		listed[k.conv] = true
		if g, a, b, err := storage.ParseConv(k.conv); err == nil && g == "" {
			for _, u := range []string{a, b} {
				if key := pairKey(u, k.conv); uconvs.Get(key) == nil {
					if err := uconvs.Put(key, nil); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// SetCursor implements storage.Backend.
func (s *Store) SetCursor(_ context.Context, req *pb.SetCursorRequest) (*pb.SetCursorResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if err := storage.CheckCursor(req); err != nil {
		return nil, fmt.Errorf("storage-bolt: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flushLocked(); err != nil {
		return nil, err
	}
	res := &pb.SetCursorResponse{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bCursors)
		old := getCursor(b, req.User, req.Conv)
		c := storage.RaiseCursor(old, req.Delivered, req.Read)
		res.Cursor = c
		if c.Delivered == old.Delivered && c.Read == old.Read {
			return nil
		}
		if err := putCursor(b, req.User, c); err != nil {
			return err
		}
		if c.Delivered == old.Delivered {
			return nil
		}
		if err := raiseFloor(tx, req.User, req.Conv, c.Delivered); err != nil {
			return err
		}
		n, err := dropDelivered(tx, req.User, req.Conv, c.Delivered)
		res.Removed = n
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: set cursor of %s: %w", req.User, err)
	}
	return res, nil
}

// dropDelivered removes user's inbox entries of conv with seq <= upTo, keeping the
// greatest cursor handed out (so that cursors never repeat).
func dropDelivered(tx *bolt.Tx, user, conv string, upTo int64) (int64, error) {
	b := tx.Bucket(bInbox)
	prefix, convPrefix := strKey(user), strKey(conv)
	var del [][]byte
	var top uint64
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if !bytes.HasPrefix(v, convPrefix) {
			continue
		}
		if seq, err := readU64(v[len(convPrefix):]); err != nil || int64(seq) > upTo {
			continue
		}
		del = append(del, k)
		top, _ = readU64(k[len(prefix):])
	}
	for _, k := range del {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	if floor := tx.Bucket(bInboxSeq); top > getU64(floor, []byte(user)) {
		if err := putU64(floor, []byte(user), top); err != nil {
			return 0, err
		}
	}
	return int64(len(del)), nil
}

// readsOf checks a read of user's (op names it) and waits until what was appended is
// readable.
func (s *Store) readsOf(op, user string) error {
	if err := s.opened(); err != nil {
		return err
	}
	if user == "" {
		return fmt.Errorf("storage-bolt: %s: empty user: %w", op, storage.ErrInvalid)
	}
	return s.syncReads()
}

// Cursors implements storage.Backend.
func (s *Store) Cursors(_ context.Context, req *pb.CursorsRequest) (*pb.CursorsResponse, error) {
	if err := s.readsOf("cursors", req.User); err != nil {
		return nil, err
	}
	res := &pb.CursorsResponse{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bCursors)
		for _, conv := range req.Convs {
			if c := getCursor(b, req.User, conv); c.Delivered > 0 || c.Read > 0 {
				res.Cursors = append(res.Cursors, c)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: cursors of %s: %w", req.User, err)
	}
	return res, nil
}

// Conversations implements storage.Backend: the user's private conversations (uconvs)
// and req.Groups, each with its last chat (a seek on msgs), newest first; unread counts
// and cursors are read for the page only.
func (s *Store) Conversations(_ context.Context, req *pb.ConversationsRequest) (*pb.ConversationsResponse, error) {
	if err := s.readsOf("conversations", req.User); err != nil {
		return nil, err
	}
	if err := s.backfill(); err != nil {
		return nil, fmt.Errorf("storage-bolt: conversations: list private conversations: %w", err)
	}
	res := &pb.ConversationsResponse{}
	err := s.db.View(func(tx *bolt.Tx) error {
		msgs := tx.Bucket(bMsgs)
		convs := make([]string, 0, len(req.Groups))
		for _, g := range req.Groups {
			convs = append(convs, storage.GroupConv(g))
		}
		prefix := strKey(req.User)
		c := tx.Bucket(bUConvs).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			conv, _, err := readStr(k[len(prefix):])
			if err != nil {
				return err
			}
			convs = append(convs, conv)
		}
		for _, conv := range convs {
			last, err := lastChat(msgs, conv)
			if err != nil {
				return err
			}
			if last == nil || (req.Before > 0 && last.ServerTime >= req.Before) {
				continue
			}
			res.Conversations = append(res.Conversations, &pb.Conversation{Conv: conv, Last: last, LastTime: last.ServerTime})
		}
		slices.SortFunc(res.Conversations, func(a, b *pb.Conversation) int {
			return cmp.Or(cmp.Compare(b.LastTime, a.LastTime), cmp.Compare(a.Conv, b.Conv))
		})
		if cs := res.Conversations; req.Limit > 0 && len(cs) > int(req.Limit) {
			// A page ends between two server times, never inside one (before is exclusive).
			n := int(req.Limit)
			for n < len(cs) && cs[n].LastTime == cs[n-1].LastTime {
				n++
			}
			res.Conversations, res.More = cs[:n], n < len(cs)
		}
		cursors := tx.Bucket(bCursors)
		for _, cv := range res.Conversations {
			cv.Mine = getCursor(cursors, req.User, cv.Conv)
			if g, a, b, err := storage.ParseConv(cv.Conv); err == nil && g == "" {
				peer := a
				if a == req.User {
					peer = b
				}
				cv.Peer = getCursor(cursors, peer, cv.Conv)
			}
			n, err := countUnread(msgs, cv.Conv, cv.Mine.Read, req.User)
			if err != nil {
				return err
			}
			cv.Unread = n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: conversations of %s: %w", req.User, err)
	}
	return res, nil
}

// lastChat returns the last chat (not a recall event) of conv, or nil.
func lastChat(msgs *bolt.Bucket, conv string) (*pb.Message, error) {
	prefix := strKey(conv)
	c := msgs.Cursor()
	k, v := c.Seek(appendU64(slices.Clip(prefix), ^uint64(0)))
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
		m := &pb.Message{}
		if err := proto.Unmarshal(v, m); err != nil {
			return nil, fmt.Errorf("decode message %x: %w", k, err)
		}
		if m.Kind == storage.KindChat {
			return m, nil
		}
	}
	return nil, nil
}

// countUnread counts the chats of conv after seq read that are unread for user.
func countUnread(msgs *bolt.Bucket, conv string, read int64, user string) (int64, error) {
	prefix := strKey(conv)
	var n int64
	c := msgs.Cursor()
	for k, v := c.Seek(msgKey(conv, read+1)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		m := &pb.Message{}
		if err := proto.Unmarshal(v, m); err != nil {
			return 0, fmt.Errorf("decode message %x: %w", k, err)
		}
		if storage.Unread(m, user) {
			n++
		}
	}
	return n, nil
}
