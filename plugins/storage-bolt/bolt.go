// Package storagebolt is timgw's embedded default storage plugin: a storage.Backend on
// bbolt (go.etcd.io/bbolt), one file in a local data directory, no server to install.
//
// Append logs chats to a write-ahead log (wal.go: one sequential write and one fdatasync
// per group commit; the SDK's server hands Append every batch that arrived during the
// previous call) and a background applier writes them into bbolt in large transactions,
// so that the B-tree pages of a conversation or an inbox are rewritten once for many
// chats. Reads and the other writes first wait until what was logged before them is
// applied. Layout (keys of length-prefixed strings and big-endian integers, see keys.go):
//
//	msgs      conv, seq        -> Message (protobuf); the last seq is found by a seek
//	dedup     from, id         -> msgs key
//	inbox     user, cursor     -> msgs key; the last cursor is found by a seek
//	inboxseq  user             -> greatest confirmed cursor (cursors never repeat)
//	groups    group id         -> Group (name only)
//	members   group id, member -> empty
//	users     user id          -> User
//	meta      "applied-lsn"    -> last log record applied (replay skips up to it)
//
// and log segments wal-<first LSN>.log next to timgw.db.
package storagebolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
	buckets   = [][]byte{bMsgs, bDedup, bInbox, bInboxSeq, bGroups, bMembers, bUsers, bMeta}
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
	mu      sync.Mutex // serializes Append, Recall and Confirm (single writer of seqs and cursors)
	applied *sync.Cond // on mu: broadcast when a generation was applied (or the store broke)
	db      *bolt.DB
	dir     string
	nosync  bool

	cur     *gen   // logged since the last freeze
	frozen  *gen   // being applied to bbolt, or nil
	lsn     uint64 // last LSN logged
	applLSN uint64 // last LSN applied to bbolt (durably)
	broken  error  // set when the log or an apply failed: every call fails until restart
	pausing int    // flushes waiting with Appends held back
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
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
		// Map the file generously up front: growing the mapping waits for every read
		// transaction (Append reads while the applier commits). Address space, not memory.
		InitialMmapSize: initialMmap,
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
	s.db, s.dir, s.nosync = db, cfg.Dir, cfg.NoSync
	if err := s.recover(); err != nil {
		_ = db.Close()
		s.db = nil
		return nil, err
	}
	seg, err := createSegment(s.dir, s.lsn+1, s.nosync)
	if err != nil {
		_ = db.Close()
		s.db = nil
		return nil, err
	}
	s.cur, s.frozen, s.broken = newGen(seg), nil, nil
	s.applied = sync.NewCond(&s.mu)
	s.kick, s.stop, s.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go s.applier()
	return &pb.OpenResponse{Name: Name, Version: Version}, nil
}

// recover applies what the log segments hold beyond the applied LSN, then removes them.
func (s *Store) recover() error {
	paths, err := segments(s.dir)
	if err != nil {
		return err
	}
	var applied uint64
	_ = s.db.View(func(tx *bolt.Tx) error {
		applied = getU64(tx.Bucket(bMeta), kAppliedLS)
		return nil
	})
	last := applied
	g := newGen(nil)
	for _, p := range paths {
		recs, err := readSegment(p)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.lsn <= last {
				continue // applied before the crash (or an older segment's leftovers)
			}
			last = r.lsn
			g.recs = append(g.recs, r)
		}
	}
	if len(g.recs) > 0 {
		if err := s.apply(g); err != nil {
			return fmt.Errorf("storage-bolt: replay log: %w", err)
		}
	}
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("storage-bolt: remove replayed log: %w", err)
		}
	}
	s.lsn, s.applLSN = last, last
	return nil
}

// Close implements storage.Backend: it applies what is logged and closes the store.
func (s *Store) Close() error {
	if s.db == nil {
		return nil
	}
	s.mu.Lock()
	ferr := s.flushLocked()
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	var serr error
	if s.cur != nil && s.cur.seg != nil {
		_ = s.cur.seg.f.Close()
		if ferr == nil && len(s.cur.recs) == 0 {
			serr = os.Remove(s.cur.seg.path)
		}
	}
	err := s.db.Close()
	s.db = nil
	return errors.Join(ferr, serr, err)
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

// Tuning of the log: the applier writes a generation into bbolt when it has applyAt
// chats, or every applyEvery; Append waits while maxPending chats are not applied yet.
const (
	applyAt    = 16 << 10
	applyEvery = 200 * time.Millisecond
	maxPending = 128 << 10
)

// overlay is what one Append call assigned so far, over the generations and bbolt.
type overlay struct {
	s       *Store
	tx      *bolt.Tx // a read transaction, opened on first need
	seqs    map[string]int64
	cursors map[string]int64
	dedup   map[string]*pb.AppendResult
}

func (o *overlay) read() (*bolt.Tx, error) {
	if o.tx == nil {
		tx, err := o.s.db.Begin(false)
		if err != nil {
			return nil, err
		}
		o.tx = tx
	}
	return o.tx, nil
}

func (o *overlay) close() {
	if o.tx != nil {
		_ = o.tx.Rollback()
		o.tx = nil
	}
}

// lookup finds k in the overlay, then the current and the frozen generation.
func lookup[V any](o map[string]V, s *Store, pick func(*gen) map[string]V, k string) (V, bool) {
	if v, ok := o[k]; ok {
		return v, true
	}
	for _, g := range []*gen{s.cur, s.frozen} {
		if g != nil {
			if v, ok := pick(g)[k]; ok {
				return v, true
			}
		}
	}
	var zero V
	return zero, false
}

func (o *overlay) lastSeq(conv string) (int64, error) {
	if v, ok := lookup(o.seqs, o.s, func(g *gen) map[string]int64 { return g.seqs }, conv); ok {
		return v, nil
	}
	tx, err := o.read()
	if err != nil {
		return 0, err
	}
	return lastU64(tx.Bucket(bMsgs), strKey(conv)), nil
}

func (o *overlay) lastCursor(user string) (int64, error) {
	if v, ok := lookup(o.cursors, o.s, func(g *gen) map[string]int64 { return g.cursors }, user); ok {
		return v, nil
	}
	tx, err := o.read()
	if err != nil {
		return 0, err
	}
	return max(lastU64(tx.Bucket(bInbox), strKey(user)), int64(getU64(tx.Bucket(bInboxSeq), []byte(user)))), nil
}

func (o *overlay) stored(dk []byte) (*pb.AppendResult, error) {
	if v, ok := lookup(o.dedup, o.s, func(g *gen) map[string]*pb.AppendResult { return g.dedup }, string(dk)); ok {
		return v, nil
	}
	tx, err := o.read()
	if err != nil {
		return nil, err
	}
	key := tx.Bucket(bDedup).Get(dk)
	if key == nil {
		return nil, nil
	}
	old, err := loadMsg(tx.Bucket(bMsgs), key)
	if err != nil {
		return nil, err
	}
	return &pb.AppendResult{Seq: old.Seq, ServerTime: old.ServerTime, CreateTime: old.CreateTime}, nil
}

// Append implements storage.Backend: all of reqs in one log write and sync.
func (s *Store) Append(_ context.Context, reqs []*pb.AppendRequest) ([]*pb.AppendResult, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.broken == nil && (s.pausing > 0 || (len(s.cur.recs) >= maxPending && s.frozen != nil)) {
		s.applied.Wait()
	}
	if s.broken != nil {
		return nil, s.broken
	}
	o := &overlay{s: s, seqs: map[string]int64{}, cursors: map[string]int64{}, dedup: map[string]*pb.AppendResult{}}
	defer o.close()
	out := make([]*pb.AppendResult, len(reqs))
	var recs []*rec
	var buf []byte
	for i, r := range reqs {
		m := r.GetMessage()
		if err := storage.CheckMessage(m); err != nil {
			out[i] = &pb.AppendResult{Error: err.Error()}
			continue
		}
		dk := pairKey(m.From, m.Id)
		old, err := o.stored(dk)
		if err != nil {
			return nil, fmt.Errorf("storage-bolt: append: %w", err)
		}
		if old != nil {
			out[i] = &pb.AppendResult{Seq: old.Seq, ServerTime: old.ServerTime, CreateTime: old.CreateTime, Duplicate: true}
			continue
		}
		m = proto.Clone(m).(*pb.Message)
		m.Kind, m.Recalled = storage.KindChat, false
		last, err := o.lastSeq(m.Conv)
		if err != nil {
			return nil, fmt.Errorf("storage-bolt: append: %w", err)
		}
		m.Seq = last + 1
		o.seqs[m.Conv] = m.Seq
		mb, err := proto.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("storage-bolt: append: %w", err)
		}
		rc := &rec{lsn: s.lsn + uint64(len(recs)) + 1, conv: m.Conv, seq: m.Seq, dedup: dk, msg: mb}
		for _, u := range r.Receivers {
			if u == "" {
				continue
			}
			c, err := o.lastCursor(u)
			if err != nil {
				return nil, fmt.Errorf("storage-bolt: append: %w", err)
			}
			o.cursors[u] = c + 1
			rc.recv, rc.cursors = append(rc.recv, u), append(rc.cursors, c+1)
		}
		res := &pb.AppendResult{Seq: m.Seq, ServerTime: m.ServerTime, CreateTime: m.CreateTime}
		o.dedup[string(dk)] = res
		out[i] = res
		recs = append(recs, rc)
		buf = appendRec(buf, rc)
	}
	o.close()
	if len(recs) == 0 {
		return out, nil
	}
	if err, fatal := s.cur.seg.write(buf, s.nosync); err != nil {
		if fatal {
			s.broken = err
		}
		return nil, err
	}
	g := s.cur
	maps.Copy(g.seqs, o.seqs)
	maps.Copy(g.cursors, o.cursors)
	maps.Copy(g.dedup, o.dedup)
	g.recs = append(g.recs, recs...)
	s.lsn += uint64(len(recs))
	if len(g.recs) >= applyAt {
		s.kickApplier()
	}
	return out, nil
}

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
