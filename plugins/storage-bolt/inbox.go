package storagebolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Inbox implements storage.Backend.
func (s *Store) Inbox(_ context.Context, req *pb.InboxRequest) (*pb.InboxResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if req.User == "" {
		return nil, fmt.Errorf("storage-bolt: inbox: empty user: %w", storage.ErrInvalid)
	}
	if err := s.syncReads(); err != nil {
		return nil, err
	}
	if err := s.pull(req.User); err != nil {
		return nil, fmt.Errorf("storage-bolt: inbox of %s: pull read fan-out chats: %w", req.User, err)
	}
	res := &pb.InboxResponse{}
	err := s.db.View(func(tx *bolt.Tx) error {
		msgs := tx.Bucket(bMsgs)
		prefix := strKey(req.User)
		var convPrefix []byte
		if req.Conv != "" {
			convPrefix = strKey(req.Conv)
		}
		c := tx.Bucket(bInbox).Cursor()
		for k, v := c.Seek(inboxKey(req.User, max(req.After, 0)+1)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if convPrefix != nil && !bytes.HasPrefix(v, convPrefix) {
				continue
			}
			if req.Limit > 0 && len(res.Entries) == int(req.Limit) {
				res.More = true
				break
			}
			cur, err := readU64(k[len(prefix):])
			if err != nil {
				return err
			}
			m, err := loadMsg(msgs, v)
			if errors.Is(err, storage.ErrNotFound) {
				continue // expired or erased (an entry of a member who left the group)
			}
			if err != nil {
				return err
			}
			res.Entries = append(res.Entries, &pb.InboxEntry{Cursor: int64(cur), Message: m})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: inbox of %s: %w", req.User, err)
	}
	return res, nil
}

// Confirm implements storage.Backend.
func (s *Store) Confirm(_ context.Context, req *pb.ConfirmRequest) (*pb.ConfirmResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if req.User == "" {
		return nil, fmt.Errorf("storage-bolt: confirm: empty user: %w", storage.ErrInvalid)
	}
	res := &pb.ConfirmResponse{}
	if req.Cursor <= 0 {
		return res, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flushLocked(); err != nil {
		return nil, err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bInbox)
		prefix := strKey(req.User)
		var convPrefix []byte
		if req.Conv != "" {
			convPrefix = strKey(req.Conv)
		}
		end := inboxKey(req.User, req.Cursor)
		var del [][]byte
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && bytes.Compare(k, end) <= 0; k, v = c.Next() {
			if convPrefix == nil || bytes.HasPrefix(v, convPrefix) {
				del = append(del, k)
			}
		}
		for _, k := range del {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		res.Removed = int64(len(del))
		// Remember the greatest cursor handed out so far, so that new entries never reuse
		// a confirmed cursor even when the inbox is now empty.
		if len(del) > 0 {
			floor := tx.Bucket(bInboxSeq)
			last, _ := readU64(del[len(del)-1][len(prefix):])
			if last > getU64(floor, []byte(req.User)) {
				return putU64(floor, []byte(req.User), last)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: confirm for %s: %w", req.User, err)
	}
	return res, nil
}
