package storagebolt

import (
	"context"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Recall implements storage.Backend.
func (s *Store) Recall(_ context.Context, req *pb.RecallRequest) (*pb.RecallResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if req.From == "" || req.Id == "" {
		return nil, fmt.Errorf("storage-bolt: recall: empty from or id: %w", storage.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flushLocked(); err != nil {
		return nil, err
	}
	res := &pb.RecallResponse{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		t := newTxn(tx)
		key := t.dedup.Get(pairKey(req.From, req.Id))
		if key == nil {
			return fmt.Errorf("message %q of %s: %w", req.Id, req.From, storage.ErrNotFound)
		}
		key = slices.Clone(key)
		m, err := loadMsg(t.msgs, key)
		if err != nil {
			return err
		}
		if req.Conv != "" && m.Conv != req.Conv {
			return fmt.Errorf("message %q of %s in this conversation: %w", req.Id, req.From, storage.ErrNotFound)
		}
		if m.Recalled {
			res.Message, res.Already = m, true
			if m.RecallSeq > 0 {
				if ev, err := loadMsg(t.msgs, msgKey(m.Conv, m.RecallSeq)); err == nil {
					res.Event = ev
				}
			}
			return nil
		}
		if req.NotBefore > 0 && m.ServerTime < req.NotBefore {
			return fmt.Errorf("message %q sent at %d: %w", req.Id, m.ServerTime, storage.ErrRecallWindow)
		}
		ev := &pb.Message{Conv: m.Conv, Id: m.Id, From: m.From, To: m.To, GroupId: m.GroupId,
			ChatType: m.ChatType, MsgType: m.MsgType, CreateTime: req.Time, ServerTime: req.Time,
			Recalled: true, RecallTime: req.Time, RecalledBy: req.By,
			Kind: storage.KindRecall, RecallId: m.Id, RecallSeq: m.Seq}
		if err := t.put(ev, req.Receivers); err != nil {
			return err
		}
		m.Recalled, m.Content, m.Extras = true, "", nil
		m.RecallTime, m.RecalledBy, m.RecallSeq = req.Time, req.By, ev.Seq
		v, err := proto.Marshal(m)
		if err != nil {
			return err
		}
		if err := t.msgs.Put(key, v); err != nil {
			return err
		}
		res.Message, res.Event = m, ev
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: recall: %w", err)
	}
	return res, nil
}
