package storagebolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

func getU64(b *bolt.Bucket, k []byte) uint64 {
	if v := b.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func putU64(b *bolt.Bucket, k []byte, v uint64) error {
	return b.Put(k, appendU64(nil, v))
}

func loadMsg(msgs *bolt.Bucket, key []byte) (*pb.Message, error) {
	v := msgs.Get(key)
	if v == nil {
		return nil, fmt.Errorf("storage-bolt: message %x missing: %w", key, storage.ErrNotFound)
	}
	m := &pb.Message{}
	if err := proto.Unmarshal(v, m); err != nil {
		return nil, fmt.Errorf("storage-bolt: decode message %x: %w", key, err)
	}
	return m, nil
}

// txn holds a write transaction's buckets, and the last seq of each conversation and
// last cursor of each user it touched (read once, by a seek, then counted here).
type txn struct {
	msgs, dedup, inbox *bolt.Bucket
	seqs, cursors      map[string]int64
}

func newTxn(tx *bolt.Tx) *txn {
	return &txn{msgs: tx.Bucket(bMsgs), dedup: tx.Bucket(bDedup), inbox: tx.Bucket(bInbox),
		seqs: map[string]int64{}, cursors: map[string]int64{}}
}

// lastU64 returns the integer suffix of the greatest key of b that starts with prefix (a
// length-prefixed string), 0 when there is none.
func lastU64(b *bolt.Bucket, prefix []byte) int64 {
	c := b.Cursor()
	k, _ := c.Seek(appendU64(slices.Clip(prefix), ^uint64(0)))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return 0
	}
	v, err := readU64(k[len(prefix):])
	if err != nil {
		return 0
	}
	return int64(v)
}

// put stores m with the next seq of its conversation and adds inbox entries.
func (t *txn) put(m *pb.Message, receivers []string) error {
	last, ok := t.seqs[m.Conv]
	if !ok {
		last = max(lastU64(t.msgs, strKey(m.Conv)), seqFloor(t.msgs.Tx(), m.Conv))
	}
	m.Seq = last + 1
	t.seqs[m.Conv] = m.Seq
	key := msgKey(m.Conv, m.Seq)
	v, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if err := t.msgs.Put(key, v); err != nil {
		return err
	}
	for _, u := range receivers {
		if u == "" {
			continue
		}
		cur, ok := t.cursors[u]
		if !ok {
			cur = t.lastCursor(u)
		}
		cur++
		t.cursors[u] = cur
		if err := t.inbox.Put(inboxKey(u, cur), key); err != nil {
			return err
		}
	}
	return nil
}

// lastCursor is the last cursor of user's inbox: the greatest entry's, or, when every
// entry was confirmed, the one recorded at the last confirmation (cursors never repeat).
func (t *txn) lastCursor(user string) int64 {
	return max(lastU64(t.inbox, strKey(user)), int64(getU64(t.inboxFloor(), []byte(user))))
}

func (t *txn) inboxFloor() *bolt.Bucket { return t.inbox.Tx().Bucket(bInboxSeq) }
