package storagebolt

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// History implements storage.Backend.
func (s *Store) History(_ context.Context, req *pb.HistoryRequest) (*pb.HistoryResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if req.Conv == "" {
		return nil, fmt.Errorf("storage-bolt: history: empty conversation: %w", storage.ErrInvalid)
	}
	lo := max(req.AfterSeq, 0) + 1
	hi := int64(1<<62 - 1)
	if req.BeforeSeq > 0 {
		hi = req.BeforeSeq - 1
	}
	res := &pb.HistoryResponse{}
	if lo > hi {
		return res, nil
	}
	if err := s.syncReads(); err != nil {
		return nil, err
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := strKey(req.Conv)
		c := tx.Bucket(bMsgs).Cursor()
		var k, v []byte
		next := c.Next
		if req.Reverse {
			next = c.Prev
			k, v = c.Seek(msgKey(req.Conv, hi+1))
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		} else {
			k, v = c.Seek(msgKey(req.Conv, lo))
		}
		skip := int(max(req.Offset, 0))
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = next() {
			seq, err := readU64(k[len(prefix):])
			if err != nil {
				return err
			}
			if int64(seq) < lo || int64(seq) > hi {
				break
			}
			m := &pb.Message{}
			if err := proto.Unmarshal(v, m); err != nil {
				return fmt.Errorf("decode message %x: %w", k, err)
			}
			if (req.BeginTime > 0 && m.CreateTime < req.BeginTime) || (req.EndTime > 0 && m.CreateTime > req.EndTime) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			if req.Limit > 0 && len(res.Messages) == int(req.Limit) {
				res.More = true
				break
			}
			res.Messages = append(res.Messages, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: history of %s: %w", req.Conv, err)
	}
	if req.Reverse {
		slices.Reverse(res.Messages)
	}
	return res, nil
}
