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
//	oldest    kind, time, conv -> empty: the expiry index (oldest.go)
//
// and log segments wal-<first LSN>.log next to timgw.db.
//
// Files by concern: bolt.go opens, recovers and closes the store; wal.go is the log;
// overlay.go what an Append call assigned over the log and bbolt; append.go logs chats;
// applier.go writes the log into bbolt (txn.go: the write transaction); inbox.go,
// history.go and recall.go serve the reads and the other writes; groups.go keeps groups
// and users; keys.go builds the keys.
package storagebolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"

	bolt "go.etcd.io/bbolt"

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
		Timeout:        lockWait,
		NoSync:         cfg.NoSync,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// Map the file generously up front: growing the mapping waits for every read
		// transaction (Append reads while the applier commits). Address space, not memory.
		InitialMmapSize: initialMmap,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("storage-bolt: %s is locked by %s: one gateway per data directory: %w", path, owner(cfg.Dir), storage.ErrInUse)
		}
		return nil, fmt.Errorf("storage-bolt: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := backfillUGroups(tx); err != nil {
			return err
		}
		return buildOldest(tx)
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("storage-bolt: init %s: %w", path, err)
	}
	s.db, s.dir, s.nosync = db, cfg.Dir, cfg.NoSync
	writeOwner(cfg.Dir)
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
	return &pb.OpenResponse{Name: Name, Version: Version, ReadFanout: true}, nil
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
	removeOwner(s.dir)
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
