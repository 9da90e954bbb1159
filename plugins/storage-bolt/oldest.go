package storagebolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// The expiry index: one entry per stored conversation, keyed by the server time of its
// first (lowest-seq) message, so that Expire visits only the conversations whose first
// message is due instead of every conversation:
//
//	oldest  kind ("p:" or "g:"), first message's server time, conv -> empty
//
// The applier adds a conversation's entry when it stores the first message of an empty
// conversation (indexFirst: a lookup per chat in the small seqfloor bucket); removeMsgs
// moves or removes the entries of the conversations it removed messages of (recall events
// and recalled messages never change a conversation's first message). A store written
// before the index gets it built when it is opened (kOldest in meta marks it built).
var (
	bOldest = []byte("oldest")
	kOldest = []byte("oldest-index")
)

func init() { buckets = append(buckets, bOldest) }

// convKind is the prefix that tells a conversation's chat type ("p:" or "g:"), "" for a
// key of neither (never expired).
func convKind(conv string) string {
	if p := storage.ConvPrefix(storage.ChatTypePrivate); strings.HasPrefix(conv, p) {
		return p
	}
	if p := storage.ConvPrefix(storage.ChatTypeGroup); strings.HasPrefix(conv, p) {
		return p
	}
	return ""
}

// oldestKey is the expiry index key of conv whose first message has server time t.
// Times are stored with the sign bit flipped so that negative ones sort first.
func oldestKey(kind string, t int64, conv string) []byte {
	k := appendU64(strKey(kind), uint64(t)^(1<<63))
	return append(k, conv...)
}

// parseOldestKey splits an expiry index key whose kind prefix is pk.
func parseOldestKey(k, pk []byte) (t int64, conv string, err error) {
	rest := k[len(pk):]
	if len(rest) < 8 {
		return 0, "", errKey
	}
	return int64(binary.BigEndian.Uint64(rest) ^ (1 << 63)), string(rest[8:]), nil
}

// firstMsg returns the first message of conv, nil when it has none.
func firstMsg(msgs *bolt.Bucket, conv string) (*pb.Message, error) {
	ck := strKey(conv)
	k, v := msgs.Cursor().Seek(ck)
	if k == nil || !bytes.HasPrefix(k, ck) {
		return nil, nil
	}
	m := &pb.Message{}
	if err := proto.Unmarshal(v, m); err != nil {
		return nil, fmt.Errorf("decode message %x: %w", k, err)
	}
	return m, nil
}

// indexFirst adds conv's expiry entry when key, message seq just stored with the value
// v, is the conversation's first message. Seq 1 always is; a later seq can only be when
// the conversation's seq floor reached the seq before it (every removal raises the floor
// to the conversation's last seq, so while the floor is lower, seq-1 is still stored),
// and then a seek tells. So most chats cost one lookup in the small seqfloor bucket.
func indexFirst(tx *bolt.Tx, conv string, seq int64, key, v []byte) error {
	if seq > 1 && seqFloor(tx, conv) < seq-1 {
		return nil
	}
	kind := convKind(conv)
	if kind == "" {
		return nil
	}
	if seq > 1 {
		if k, _ := tx.Bucket(bMsgs).Cursor().Seek(strKey(conv)); !bytes.Equal(k, key) {
			return nil // seq-1 was removed, an older one is still stored
		}
	}
	m := &pb.Message{}
	if err := proto.Unmarshal(v, m); err != nil {
		return fmt.Errorf("decode message %x: %w", key, err)
	}
	return tx.Bucket(bOldest).Put(oldestKey(kind, m.ServerTime, conv), nil)
}

// reindex moves conv's expiry entry from the first message time old (hadOld: it had
// messages) to its current first message's, or removes it when none remains.
func reindex(tx *bolt.Tx, conv string, old int64, hadOld bool) error {
	kind := convKind(conv)
	if kind == "" {
		return nil
	}
	m, err := firstMsg(tx.Bucket(bMsgs), conv)
	if err != nil {
		return err
	}
	if hadOld && m != nil && m.ServerTime == old {
		return nil
	}
	idx := tx.Bucket(bOldest)
	if hadOld {
		if err := idx.Delete(oldestKey(kind, old, conv)); err != nil {
			return err
		}
	}
	if m == nil {
		return nil
	}
	return idx.Put(oldestKey(kind, m.ServerTime, conv), nil)
}

// buildOldest builds the expiry index of a store written before it (once, in Open's
// transaction): one seek and one decode per conversation.
func buildOldest(tx *bolt.Tx) error {
	meta := tx.Bucket(bMeta)
	if meta.Get(kOldest) != nil {
		return nil
	}
	idx := tx.Bucket(bOldest)
	c := tx.Bucket(bMsgs).Cursor()
	for k, v := c.First(); k != nil; {
		conv, _, err := readStr(k)
		if err != nil {
			return fmt.Errorf("message key %x: %w", k, err)
		}
		if kind := convKind(conv); kind != "" {
			m := &pb.Message{}
			if err := proto.Unmarshal(v, m); err != nil {
				return fmt.Errorf("decode message %x: %w", k, err)
			}
			if err := idx.Put(oldestKey(kind, m.ServerTime, conv), nil); err != nil {
				return err
			}
		}
		k, v = c.Seek(appendU64(strKey(conv), ^uint64(0))) // past the conversation
	}
	return meta.Put(kOldest, []byte{1})
}
