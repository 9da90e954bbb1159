// Package storagebolt is timgw's embedded default storage plugin: a storage.Backend on
// bbolt (go.etcd.io/bbolt), one file in a local data directory, no server to install.
//
// Every Append call is one bbolt read-write transaction, so one commit (and its fsyncs)
// covers every chat that arrived while the previous commit ran (group commit). Layout
// (keys of length-prefixed strings and big-endian integers, see keys.go):
//
//	msgs      conv, seq        -> Message (protobuf); the last seq is found by a seek
//	dedup     from, id         -> msgs key
//	inbox     user, cursor     -> msgs key; the last cursor is found by a seek
//	inboxseq  user             -> greatest confirmed cursor (cursors never repeat)
//	groups    group id         -> Group (name only)
//	members   group id, member -> empty
//	users     user id          -> User
package storagebolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Name is the plugin's name in timgw's configuration.
const Name = "bolt"

// Version is this plugin's version.
const Version = "1.0.0"

// FileName is the database file inside the data directory.
const FileName = "timgw.db"

var (
	bMsgs     = []byte("msgs")
	bDedup    = []byte("dedup")
	bInbox    = []byte("inbox")
	bInboxSeq = []byte("inboxseq")
	bGroups   = []byte("groups")
	bMembers  = []byte("members")
	bUsers    = []byte("users")
	buckets   = [][]byte{bMsgs, bDedup, bInbox, bInboxSeq, bGroups, bMembers, bUsers}
)

// Config is the plugin's configuration (the JSON of OpenRequest.config).
type Config struct {
	// Dir is the data directory (default "data"), created when missing.
	Dir string `json:"dir"`
	// NoSync skips fsync: fast, and loses acknowledged chats on a machine crash. For
	// benchmarks and tests only.
	NoSync bool `json:"nosync"`
}

// Store is the bbolt Backend. The zero value is ready for Open.
type Store struct {
	mu sync.Mutex // serializes Append and Recall (single writer of seqs and cursors)
	db *bolt.DB
}

var _ storage.Backend = (*Store)(nil)

// Open implements storage.Backend.
func (s *Store) Open(_ context.Context, req *pb.OpenRequest) (*pb.OpenResponse, error) {
	cfg := Config{Dir: "data"}
	if len(req.GetConfig()) > 0 {
		if err := json.Unmarshal(req.GetConfig(), &cfg); err != nil {
			return nil, fmt.Errorf("storage-bolt: config: %v: %w", err, storage.ErrInvalid)
		}
	}
	if s.db != nil {
		return nil, errors.New("storage-bolt: already open")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage-bolt: data directory: %w", err)
	}
	path := filepath.Join(cfg.Dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        2 * time.Second,
		NoSync:         cfg.NoSync,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("storage-bolt: %s is locked by another process (another timgw on the same data directory?)", path)
		}
		return nil, fmt.Errorf("storage-bolt: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("storage-bolt: init %s: %w", path, err)
	}
	s.db = db
	return &pb.OpenResponse{Name: Name, Version: Version}, nil
}

// Close implements storage.Backend.
func (s *Store) Close() error {
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

func (s *Store) opened() error {
	if s.db == nil {
		return errors.New("storage-bolt: not open")
	}
	return nil
}

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
		last = lastU64(t.msgs, strKey(m.Conv))
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

// Append implements storage.Backend: all of reqs in one transaction.
func (s *Store) Append(_ context.Context, reqs []*pb.AppendRequest) ([]*pb.AppendResult, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*pb.AppendResult
	err := s.db.Update(func(tx *bolt.Tx) error {
		out = make([]*pb.AppendResult, len(reqs))
		t := newTxn(tx)
		for i, r := range reqs {
			m := r.GetMessage()
			if err := storage.CheckMessage(m); err != nil {
				out[i] = &pb.AppendResult{Error: err.Error()}
				continue
			}
			dk := pairKey(m.From, m.Id)
			if key := t.dedup.Get(dk); key != nil {
				old, err := loadMsg(t.msgs, key)
				if err != nil {
					return err
				}
				out[i] = &pb.AppendResult{Seq: old.Seq, ServerTime: old.ServerTime, CreateTime: old.CreateTime, Duplicate: true}
				continue
			}
			m = proto.Clone(m).(*pb.Message)
			m.Kind, m.Recalled = storage.KindChat, false
			if err := t.put(m, r.Receivers); err != nil {
				return err
			}
			if err := t.dedup.Put(dk, msgKey(m.Conv, m.Seq)); err != nil {
				return err
			}
			out[i] = &pb.AppendResult{Seq: m.Seq, ServerTime: m.ServerTime, CreateTime: m.CreateTime}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: append: %w", err)
	}
	return out, nil
}

// Inbox implements storage.Backend.
func (s *Store) Inbox(_ context.Context, req *pb.InboxRequest) (*pb.InboxResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if req.User == "" {
		return nil, fmt.Errorf("storage-bolt: inbox: empty user: %w", storage.ErrInvalid)
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

// JoinGroup implements storage.Backend.
func (s *Store) JoinGroup(_ context.Context, req *pb.JoinGroupRequest) (*pb.JoinGroupResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if req.GroupId == "" {
		return nil, fmt.Errorf("storage-bolt: join group: empty group id: %w", storage.ErrInvalid)
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		groups := tx.Bucket(bGroups)
		gk := []byte(req.GroupId)
		if old := groups.Get(gk); old == nil || req.Name != "" {
			v, err := proto.Marshal(&pb.Group{Name: req.Name})
			if err != nil {
				return err
			}
			if err := groups.Put(gk, v); err != nil {
				return err
			}
		}
		members := tx.Bucket(bMembers)
		for _, m := range req.Members {
			if m == "" {
				continue
			}
			if err := members.Put(pairKey(req.GroupId, m), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: join group %s: %w", req.GroupId, err)
	}
	return &pb.JoinGroupResponse{}, nil
}

// LeaveGroup implements storage.Backend.
func (s *Store) LeaveGroup(_ context.Context, req *pb.LeaveGroupRequest) (*pb.LeaveGroupResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bMembers).Delete(pairKey(req.GroupId, req.Member))
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: leave group %s: %w", req.GroupId, err)
	}
	return &pb.LeaveGroupResponse{}, nil
}

// defaultListLimit bounds list pages when the request gives no limit.
const defaultListLimit = 1000

// ListGroups implements storage.Backend.
func (s *Store) ListGroups(_ context.Context, req *pb.ListRequest) (*pb.ListGroupsResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	limit := int(req.Limit)
	if limit <= 0 {
		limit = defaultListLimit
	}
	res := &pb.ListGroupsResponse{}
	err := s.db.View(func(tx *bolt.Tx) error {
		members := tx.Bucket(bMembers).Cursor()
		c := tx.Bucket(bGroups).Cursor()
		k, v := c.Seek([]byte(req.After))
		if k != nil && req.After != "" && string(k) == req.After {
			k, v = c.Next()
		}
		for ; k != nil; k, v = c.Next() {
			if len(res.Groups) == limit {
				res.More = true
				break
			}
			g := &pb.Group{}
			if err := proto.Unmarshal(v, g); err != nil {
				return fmt.Errorf("decode group %q: %w", k, err)
			}
			g.GroupId = string(k)
			prefix := strKey(g.GroupId)
			for mk, _ := members.Seek(prefix); mk != nil && bytes.HasPrefix(mk, prefix); mk, _ = members.Next() {
				m, rest, err := readStr(mk[len(prefix):])
				if err != nil || len(rest) != 0 {
					return fmt.Errorf("member key %x: %w", mk, errKey)
				}
				g.Members = append(g.Members, m)
			}
			res.Groups = append(res.Groups, g)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: list groups: %w", err)
	}
	return res, nil
}

// PutUser implements storage.Backend.
func (s *Store) PutUser(_ context.Context, req *pb.PutUserRequest) (*pb.PutUserResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	u := req.GetUser()
	if u.GetUserId() == "" {
		return nil, fmt.Errorf("storage-bolt: put user: empty user id: %w", storage.ErrInvalid)
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bUsers)
		stored := &pb.User{}
		if v := b.Get([]byte(u.UserId)); v != nil {
			if err := proto.Unmarshal(v, stored); err != nil {
				return fmt.Errorf("decode user %q: %w", u.UserId, err)
			}
		}
		if u.Nick != "" {
			stored.Nick = u.Nick
		}
		if u.Avatar != "" {
			stored.Avatar = u.Avatar
		}
		stored.UserId = ""
		v, err := proto.Marshal(stored)
		if err != nil {
			return err
		}
		return b.Put([]byte(u.UserId), v)
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: put user: %w", err)
	}
	return &pb.PutUserResponse{}, nil
}

// ListUsers implements storage.Backend.
func (s *Store) ListUsers(_ context.Context, req *pb.ListRequest) (*pb.ListUsersResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	limit := int(req.Limit)
	if limit <= 0 {
		limit = defaultListLimit
	}
	res := &pb.ListUsersResponse{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bUsers).Cursor()
		k, v := c.Seek([]byte(req.After))
		if k != nil && req.After != "" && string(k) == req.After {
			k, v = c.Next()
		}
		for ; k != nil; k, v = c.Next() {
			if len(res.Users) == limit {
				res.More = true
				break
			}
			u := &pb.User{}
			if err := proto.Unmarshal(v, u); err != nil {
				return fmt.Errorf("decode user %q: %w", k, err)
			}
			u.UserId = string(k)
			res.Users = append(res.Users, u)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: list users: %w", err)
	}
	return res, nil
}

// Main runs the plugin: the main of the built-in plugin subprocess. Unless GOGC is set,
// it collects garbage at 400% heap growth instead of 100%: its heap is small and its
// commits allocate a lot (about +25% stored chats/s).
func Main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	s := &Store{}
	storage.Serve(s)
	_ = s.Close()
}
