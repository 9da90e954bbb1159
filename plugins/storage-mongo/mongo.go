// Package storagemongo is timgw's MongoDB storage plugin: a storage.Backend on
// go.mongodb.org/mongo-driver/v2. The schema and its indexes are described in README.md.
//
// Correctness rests on unique indexes and single-document writes, never on transactions,
// so that the plugin processes of several gateways may share one database (Open answers
// Shared): a chat's seq is claimed by inserting its document with the unique _id
// conv#seq (seq.go), so seqs are unique and gap-free per conversation even when a
// process dies mid-append; a chat and its dedup key are one document (a unique index on
// dk refuses a second, whichever process writes it); a chat is marked (ib) once its
// inbox entries are written, and a resend of a chat without the mark (a crash between
// the two writes) writes them; inbox entries have deterministic ids, so writing one twice
// is harmless.
package storagemongo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Name is the plugin's name in timgw's configuration.
const Name = "mongo"

// Version is this plugin's version.
const Version = "1.0.0"

// Config is the plugin's configuration (the JSON of OpenRequest.config).
type Config struct {
	// URI is the MongoDB connection string (default mongodb://127.0.0.1:27017). Its
	// options (w, journal, ...) apply; without a w the plugin asks for w:majority, j:true.
	URI string `json:"uri"`
	// Database is the database name (default "timgw").
	Database string `json:"database"`
	// Timeout bounds connecting and each operation, as a Go duration (default "10s").
	Timeout string `json:"timeout"`
}

// Store is the MongoDB Backend. The zero value is ready for Open.
type Store struct {
	mu       sync.Mutex // one Append or Recall at a time in this process (other processes may write meanwhile)
	client   *mongo.Client
	db       *mongo.Database
	msgs     *mongo.Collection
	counters *mongo.Collection
	inbox    *mongo.Collection
	groups   *mongo.Collection
	members  *mongo.Collection
	users    *mongo.Collection
	timeout  time.Duration
	rf       rfGroups // groups flagged read fan-out by this process (readfanout.go)
}

var _ storage.Backend = (*Store)(nil)

// msgDoc is a document of the messages collection.
type msgDoc struct {
	ID         string `bson:"_id"`  // conv + "#" + seq (19 digits)
	DK         string `bson:"dk"`   // dedup key: from and id (unique)
	Conv       string `bson:"conv"` // conversation key
	Seq        int64  `bson:"seq"`  // per-conversation sequence
	MID        string `bson:"mid"`  // message id
	From       string `bson:"from"` //
	To         string `bson:"to,omitempty"`
	GroupID    string `bson:"gid,omitempty"`
	ChatType   int32  `bson:"ct"`
	MsgType    int32  `bson:"mt"`
	CreateTime int64  `bson:"ctime"`
	ServerTime int64  `bson:"stime"`
	Content    string `bson:"content"`
	Extras     []byte `bson:"extras,omitempty"`
	Recalled   bool   `bson:"recalled,omitempty"`
	RecallTime int64  `bson:"rtime,omitempty"`
	RecalledBy string `bson:"rby,omitempty"`
	Kind       int32  `bson:"kind"`
	RecallID   string `bson:"rid,omitempty"`
	RecallSeq  int64  `bson:"rseq,omitempty"`
	Inboxed    bool   `bson:"ib"`           // its inbox entries are written
	ReadFanout bool   `bson:"rf,omitempty"` // a read fan-out chat: pulled into inboxes (readfanout.go)
}

// inboxDoc is a document of the inbox collection.
type inboxDoc struct {
	ID   string `bson:"_id"`  // user and message _id: writing an entry twice is a no-op
	User string `bson:"user"` //
	Cur  int64  `bson:"cur"`  // cursor, increasing per user
	Conv string `bson:"conv"` //
	Ref  string `bson:"ref"`  // the message's _id
	// Seen is set when a read returned the entry: a confirmation removes only entries
	// read before it (see Confirm).
	Seen bool `bson:"seen,omitempty"`
}

func docID(conv string, seq int64) string { return fmt.Sprintf("%s#%019d", conv, seq) }

// dedupKey is the unique key of a chat: from and id, length-prefixed.
func dedupKey(from, id string) string { return strconv.Itoa(len(from)) + ":" + from + id }

func inboxID(user, ref string) string { return strconv.Itoa(len(user)) + ":" + user + ref }

func toDoc(m *pb.Message) *msgDoc {
	return &msgDoc{ID: docID(m.Conv, m.Seq), Conv: m.Conv, Seq: m.Seq, MID: m.Id, From: m.From, To: m.To,
		GroupID: m.GroupId, ChatType: m.ChatType, MsgType: m.MsgType, CreateTime: m.CreateTime,
		ServerTime: m.ServerTime, Content: m.Content, Extras: m.Extras, Recalled: m.Recalled,
		RecallTime: m.RecallTime, RecalledBy: m.RecalledBy, Kind: m.Kind, RecallID: m.RecallId, RecallSeq: m.RecallSeq,
		ReadFanout: m.ReadFanout}
}

func (d *msgDoc) message() *pb.Message {
	return &pb.Message{Conv: d.Conv, Seq: d.Seq, Id: d.MID, From: d.From, To: d.To, GroupId: d.GroupID,
		ChatType: d.ChatType, MsgType: d.MsgType, CreateTime: d.CreateTime, ServerTime: d.ServerTime,
		Content: d.Content, Extras: d.Extras, Recalled: d.Recalled, RecallTime: d.RecallTime,
		RecalledBy: d.RecalledBy, Kind: d.Kind, RecallId: d.RecallID, RecallSeq: d.RecallSeq,
		ReadFanout: d.ReadFanout}
}

// Open implements storage.Backend: it connects, checks the server answers, and creates
// the indexes.
func (s *Store) Open(ctx context.Context, req *pb.OpenRequest) (*pb.OpenResponse, error) {
	cfg := Config{URI: "mongodb://127.0.0.1:27017", Database: "timgw", Timeout: "10s"}
	if len(req.GetConfig()) > 0 {
		if err := json.Unmarshal(req.GetConfig(), &cfg); err != nil {
			return nil, fmt.Errorf("storage-mongo: config: %v: %w", err, storage.ErrInvalid)
		}
	}
	timeout, err := time.ParseDuration(cfg.Timeout)
	if err != nil || timeout <= 0 {
		return nil, fmt.Errorf("storage-mongo: config: timeout %q: %w", cfg.Timeout, storage.ErrInvalid)
	}
	if s.client != nil {
		return nil, errors.New("storage-mongo: already open")
	}
	opts := options.Client().ApplyURI(cfg.URI).SetTimeout(timeout).SetAppName("timgw-storage")
	if opts.WriteConcern == nil {
		opts.SetWriteConcern(&writeconcern.WriteConcern{W: writeconcern.WCMajority, Journal: new(true)})
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: connect: %w", err)
	}
	db := client.Database(cfg.Database)
	if err := db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("storage-mongo: ping %s: %w", cfg.Database, err)
	}
	s.client, s.db, s.timeout = client, db, timeout
	s.msgs, s.counters, s.inbox = db.Collection("messages"), db.Collection("counters"), db.Collection("inbox")
	s.groups, s.members, s.users = db.Collection("groups"), db.Collection("members"), db.Collection("users")
	if err := s.ensureIndexes(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.ensureReceiptIndexes(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.ensureRetentionIndexes(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.ensureReadFanoutIndexes(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	// Every plugin process opened on this database sees one store: seqs are claimed with
	// unique _ids and dedup keys are unique (seq.go), so gateways may share it. Large
	// groups' chats are pulled into inboxes when read (readfanout.go).
	return &pb.OpenResponse{Name: Name, Version: Version, Shared: true, ReadFanout: true}, nil
}

func (s *Store) ensureIndexes(ctx context.Context) error {
	type ix struct {
		c      *mongo.Collection
		keys   bson.D
		unique bool
	}
	for _, x := range []ix{
		{s.msgs, bson.D{{Key: "dk", Value: 1}}, true},
		{s.msgs, bson.D{{Key: "conv", Value: 1}, {Key: "seq", Value: 1}}, true},
		{s.inbox, bson.D{{Key: "user", Value: 1}, {Key: "cur", Value: 1}}, false},
		{s.members, bson.D{{Key: "g", Value: 1}, {Key: "u", Value: 1}}, false},
	} {
		m := mongo.IndexModel{Keys: x.keys}
		if x.unique {
			m.Options = options.Index().SetUnique(true)
		}
		if _, err := x.c.Indexes().CreateOne(ctx, m); err != nil {
			return fmt.Errorf("storage-mongo: create index on %s: %w", x.c.Name(), err)
		}
	}
	return nil
}

// Close implements storage.Backend.
func (s *Store) Close() error {
	if s.client == nil {
		return nil
	}
	err := s.client.Disconnect(context.Background())
	s.client = nil
	return err
}

// Drop removes the store's database (tests).
func (s *Store) Drop(ctx context.Context) error {
	s.rf.m.Clear() // the groups' read fan-out flags go with the database
	return s.db.Drop(ctx)
}

func (s *Store) opened() error {
	if s.client == nil {
		return errors.New("storage-mongo: not open")
	}
	return nil
}

// nextSeqs reserves n sequence numbers of counter id and returns the first.
func (s *Store) nextSeqs(ctx context.Context, id string, n int64) (int64, error) {
	var doc struct {
		Seq int64 `bson:"seq"`
	}
	inc := func() error {
		return s.counters.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: id}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: n}}}},
			options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&doc)
	}
	err := inc()
	if mongo.IsDuplicateKeyError(err) { // another process created the counter meanwhile
		err = inc()
	}
	if err != nil {
		return 0, fmt.Errorf("counter %s: %w", id, err)
	}
	return doc.Seq - n + 1, nil
}

// findByDK loads the messages with the given dedup keys.
func (s *Store) findByDK(ctx context.Context, keys []string) (map[string]*msgDoc, error) {
	out := make(map[string]*msgDoc, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	cur, err := s.msgs.Find(ctx, bson.D{{Key: "dk", Value: bson.D{{Key: "$in", Value: keys}}}})
	if err != nil {
		return nil, err
	}
	var docs []*msgDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	for _, d := range docs {
		out[d.DK] = d
	}
	return out, nil
}

// addInbox writes inbox entries for the receivers of each message (ref -> receivers).
// Entries that exist already (a retry after a crash) are left alone.
func (s *Store) addInbox(ctx context.Context, msgs []*msgDoc, receivers [][]string) error {
	n := 0
	for _, r := range receivers {
		n += len(r)
	}
	if n == 0 {
		return nil
	}
	first, err := s.nextSeqs(ctx, "inbox", int64(n))
	if err != nil {
		return err
	}
	docs := make([]any, 0, n)
	for i, m := range msgs {
		for _, u := range receivers[i] {
			if u == "" {
				continue
			}
			docs = append(docs, &inboxDoc{ID: inboxID(u, m.ID), User: u, Cur: first, Conv: m.Conv, Ref: m.ID})
			first++
		}
	}
	if len(docs) == 0 {
		return nil
	}
	_, err = s.inbox.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err != nil && !onlyDuplicates(err) {
		return fmt.Errorf("inbox: %w", err)
	}
	return nil
}

// inboxed writes the inbox entries of msgs and marks them written.
func (s *Store) inboxed(ctx context.Context, msgs []*msgDoc, receivers [][]string) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := s.addInbox(ctx, msgs, receivers); err != nil {
		return err
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	_, err := s.msgs.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "ib", Value: true}}}})
	if err != nil {
		return fmt.Errorf("mark inbox written: %w", err)
	}
	return nil
}

// onlyDuplicates reports whether a bulk insert failed only on duplicate keys.
func onlyDuplicates(err error) bool {
	var bw mongo.BulkWriteException
	if errors.As(err, &bw) {
		if bw.WriteConcernError != nil {
			return false
		}
		for _, e := range bw.WriteErrors {
			if e.Code != 11000 {
				return false
			}
		}
		return true
	}
	return mongo.IsDuplicateKeyError(err)
}

// Append implements storage.Backend.
func (s *Store) Append(ctx context.Context, reqs []*pb.AppendRequest) ([]*pb.AppendResult, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*pb.AppendResult, len(reqs))
	keys := make([]string, len(reqs))
	var lookup []string
	for i, r := range reqs {
		if err := storage.CheckMessage(r.GetMessage()); err != nil {
			out[i] = &pb.AppendResult{Error: err.Error()}
			continue
		}
		keys[i] = dedupKey(r.Message.From, r.Message.Id)
		lookup = append(lookup, keys[i])
	}
	stored, err := s.findByDK(ctx, lookup)
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: append: dedup lookup: %w", err)
	}
	// New chats, by conversation, in order; duplicates (of stored chats or of an earlier
	// chat of this batch) point at their original.
	var fresh []*msgDoc
	var freshReceivers [][]string
	var dupDocs []*msgDoc
	var dupReceivers [][]string
	firstOf := map[string]int{} // dedup key -> index in reqs of its first new chat
	for i, r := range reqs {
		if out[i] != nil {
			continue
		}
		if d := stored[keys[i]]; d != nil {
			out[i] = &pb.AppendResult{Seq: d.Seq, ServerTime: d.ServerTime, CreateTime: d.CreateTime, Duplicate: true}
			if !d.Inboxed {
				dupDocs, dupReceivers = append(dupDocs, d), append(dupReceivers, receiversOf(r))
				d.Inboxed = true // once per batch
			}
			continue
		}
		if _, ok := firstOf[keys[i]]; ok {
			continue // resolved below, once the first has its seq
		}
		firstOf[keys[i]] = i
		m := r.Message
		d := &msgDoc{DK: keys[i], Conv: m.Conv, MID: m.Id, From: m.From, To: m.To, GroupID: m.GroupId,
			ChatType: m.ChatType, MsgType: m.MsgType, CreateTime: m.CreateTime, ServerTime: m.ServerTime,
			Content: m.Content, Extras: m.Extras, Kind: storage.KindChat, ReadFanout: m.ReadFanout}
		fresh, freshReceivers = append(fresh, d), append(freshReceivers, receiversOf(r))
	}
	// The groups of read fan-out chats are flagged before the chats exist, so that a pull
	// never misses a stored chat (readfanout.go).
	if err := s.flagReadFanout(ctx, fresh); err != nil {
		return nil, fmt.Errorf("storage-mongo: append: %w", err)
	}
	// Claim the seqs by inserting the chats (seq.go); chats another gateway's process
	// stored since the lookup above come back as duplicates.
	taken, err := s.claim(ctx, fresh)
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: append: %w", err)
	}
	if len(taken) > 0 {
		stored, storedReceivers := fresh[:0:0], freshReceivers[:0:0]
		for i, d := range fresh {
			if t := taken[d.DK]; t != nil {
				if !t.Inboxed { // its writer may have died before the inbox entries
					dupDocs, dupReceivers = append(dupDocs, t), append(dupReceivers, freshReceivers[i])
					t.Inboxed = true
				}
				continue
			}
			stored, storedReceivers = append(stored, d), append(storedReceivers, freshReceivers[i])
		}
		fresh, freshReceivers = stored, storedReceivers
	}
	// Conversation heads and senders' cursors (receipts.go), before the marks: a chat
	// whose write was cut short gets them again with the inbox entries when resent.
	if err := s.afterAppend(ctx, append(fresh[:len(fresh):len(fresh)], dupDocs...)); err != nil {
		return nil, fmt.Errorf("storage-mongo: append: %w", err)
	}
	// Inbox entries of the new chats, and of duplicates whose first write was cut short
	// by a crash (existing entries are kept as they are); then the marks.
	if err := s.inboxed(ctx, append(fresh, dupDocs...), append(freshReceivers, dupReceivers...)); err != nil {
		return nil, fmt.Errorf("storage-mongo: append: %w", err)
	}
	byKey := make(map[string]*msgDoc, len(fresh))
	for _, d := range fresh {
		byKey[d.DK] = d
	}
	for i := range reqs {
		if out[i] != nil {
			continue
		}
		if t := taken[keys[i]]; t != nil {
			out[i] = &pb.AppendResult{Seq: t.Seq, ServerTime: t.ServerTime, CreateTime: t.CreateTime, Duplicate: true}
			continue
		}
		first := reqs[firstOf[keys[i]]]
		d := byKey[keys[i]]
		out[i] = &pb.AppendResult{Seq: d.Seq, ServerTime: d.ServerTime, CreateTime: d.CreateTime,
			Duplicate: first != reqs[i]}
	}
	return out, nil
}

// receiversOf returns the users that get an inbox entry of r's chat at Append: none for a
// read fan-out chat (its receivers are ignored: members pull it).
func receiversOf(r *pb.AppendRequest) []string {
	if r.Message.ReadFanout {
		return nil
	}
	return r.Receivers
}

// loadRefs loads messages by _id.
func (s *Store) loadRefs(ctx context.Context, refs []string) (map[string]*msgDoc, error) {
	out := make(map[string]*msgDoc, len(refs))
	if len(refs) == 0 {
		return out, nil
	}
	cur, err := s.msgs.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: refs}}}})
	if err != nil {
		return nil, err
	}
	var docs []*msgDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	for _, d := range docs {
		out[d.ID] = d
	}
	return out, nil
}

// Inbox implements storage.Backend.
func (s *Store) Inbox(ctx context.Context, req *pb.InboxRequest) (*pb.InboxResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if req.User == "" {
		return nil, fmt.Errorf("storage-mongo: inbox: empty user: %w", storage.ErrInvalid)
	}
	// The read fan-out chats of the user's groups become entries first (readfanout.go).
	if err := s.pull(ctx, req.User); err != nil {
		return nil, fmt.Errorf("storage-mongo: inbox of %s: %w", req.User, err)
	}
	filter := bson.D{{Key: "user", Value: req.User}, {Key: "cur", Value: bson.D{{Key: "$gt", Value: max(req.After, 0)}}}}
	if req.Conv != "" {
		filter = append(filter, bson.E{Key: "conv", Value: req.Conv})
	}
	opts := options.Find().SetSort(bson.D{{Key: "cur", Value: 1}})
	if req.Limit > 0 {
		opts.SetLimit(int64(req.Limit) + 1)
	}
	cur, err := s.inbox.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: inbox of %s: %w", req.User, err)
	}
	var entries []*inboxDoc
	if err := cur.All(ctx, &entries); err != nil {
		return nil, fmt.Errorf("storage-mongo: inbox of %s: %w", req.User, err)
	}
	res := &pb.InboxResponse{}
	if req.Limit > 0 && len(entries) > int(req.Limit) {
		entries, res.More = entries[:req.Limit], true
	}
	refs := make([]string, len(entries))
	for i, e := range entries {
		refs[i] = e.Ref
	}
	msgs, err := s.loadRefs(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: inbox of %s: messages: %w", req.User, err)
	}
	if err := s.markSeen(ctx, entries); err != nil {
		return nil, fmt.Errorf("storage-mongo: inbox of %s: %w", req.User, err)
	}
	for _, e := range entries {
		d := msgs[e.Ref]
		if d == nil {
			return nil, fmt.Errorf("storage-mongo: inbox of %s: message %s missing", req.User, e.Ref)
		}
		res.Entries = append(res.Entries, &pb.InboxEntry{Cursor: e.Cur, Message: d.message()})
	}
	return res, nil
}

// markSeen records that entries were returned by a read, so that a confirmation may
// remove them.
func (s *Store) markSeen(ctx context.Context, entries []*inboxDoc) error {
	var ids []string
	for _, e := range entries {
		if !e.Seen {
			ids = append(ids, e.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := s.inbox.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "seen", Value: true}}}})
	if err != nil {
		return fmt.Errorf("mark read: %w", err)
	}
	return nil
}

// Confirm implements storage.Backend.
func (s *Store) Confirm(ctx context.Context, req *pb.ConfirmRequest) (*pb.ConfirmResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if req.User == "" {
		return nil, fmt.Errorf("storage-mongo: confirm: empty user: %w", storage.ErrInvalid)
	}
	if req.Cursor <= 0 {
		return &pb.ConfirmResponse{}, nil
	}
	// Only entries a read returned: with several processes on one database, cursors come
	// from one shared counter reserved before the insert, so an entry can become visible
	// after a read that returned a higher cursor. Such an entry is not seen yet, and
	// survives the confirmation of that cursor to be read next time.
	filter := bson.D{{Key: "user", Value: req.User}, {Key: "cur", Value: bson.D{{Key: "$lte", Value: req.Cursor}}},
		{Key: "seen", Value: true}}
	if req.Conv != "" {
		filter = append(filter, bson.E{Key: "conv", Value: req.Conv})
	}
	res, err := s.inbox.DeleteMany(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: confirm for %s: %w", req.User, err)
	}
	return &pb.ConfirmResponse{Removed: res.DeletedCount}, nil
}

// History implements storage.Backend.
func (s *Store) History(ctx context.Context, req *pb.HistoryRequest) (*pb.HistoryResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if req.Conv == "" {
		return nil, fmt.Errorf("storage-mongo: history: empty conversation: %w", storage.ErrInvalid)
	}
	seq := bson.D{{Key: "$gt", Value: max(req.AfterSeq, 0)}}
	if req.BeforeSeq > 0 {
		seq = append(seq, bson.E{Key: "$lt", Value: req.BeforeSeq})
	}
	filter := bson.D{{Key: "conv", Value: req.Conv}, {Key: "seq", Value: seq}}
	if req.BeginTime > 0 || req.EndTime > 0 {
		t := bson.D{}
		if req.BeginTime > 0 {
			t = append(t, bson.E{Key: "$gte", Value: req.BeginTime})
		}
		if req.EndTime > 0 {
			t = append(t, bson.E{Key: "$lte", Value: req.EndTime})
		}
		filter = append(filter, bson.E{Key: "ctime", Value: t})
	}
	dir := 1
	if req.Reverse {
		dir = -1
	}
	opts := options.Find().SetSort(bson.D{{Key: "seq", Value: dir}})
	if req.Offset > 0 {
		opts.SetSkip(int64(req.Offset))
	}
	if req.Limit > 0 {
		opts.SetLimit(int64(req.Limit) + 1)
	}
	cur, err := s.msgs.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: history of %s: %w", req.Conv, err)
	}
	var docs []*msgDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("storage-mongo: history of %s: %w", req.Conv, err)
	}
	res := &pb.HistoryResponse{}
	if req.Limit > 0 && len(docs) > int(req.Limit) {
		docs, res.More = docs[:req.Limit], true
	}
	for _, d := range docs {
		res.Messages = append(res.Messages, d.message())
	}
	if req.Reverse {
		slices.Reverse(res.Messages)
	}
	return res, nil
}

// Recall implements storage.Backend. Its writes are ordered so that a retry after a crash
// at any point completes the recall: the event (unique dk "recall:" + the chat's _id)
// first, then the mark on the chat, then the inbox entries.
func (s *Store) Recall(ctx context.Context, req *pb.RecallRequest) (*pb.RecallResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if req.From == "" || req.Id == "" {
		return nil, fmt.Errorf("storage-mongo: recall: empty from or id: %w", storage.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	found, err := s.findByDK(ctx, []string{dedupKey(req.From, req.Id)})
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: recall: %w", err)
	}
	m := found[dedupKey(req.From, req.Id)]
	if m == nil || (req.Conv != "" && m.Conv != req.Conv) {
		return nil, fmt.Errorf("storage-mongo: recall: message %q of %s: %w", req.Id, req.From, storage.ErrNotFound)
	}
	evKey := "recall:" + m.ID
	if m.Recalled {
		res := &pb.RecallResponse{Message: m.message(), Already: true}
		evs, err := s.findByDK(ctx, []string{evKey})
		if err != nil {
			return nil, fmt.Errorf("storage-mongo: recall: %w", err)
		}
		if ev := evs[evKey]; ev != nil {
			res.Event = ev.message()
			if !ev.Inboxed { // a crash cut the first recall short
				if err := s.inboxed(ctx, []*msgDoc{ev}, [][]string{req.Receivers}); err != nil {
					return nil, fmt.Errorf("storage-mongo: recall: %w", err)
				}
			}
		}
		return res, nil
	}
	if req.NotBefore > 0 && m.ServerTime < req.NotBefore {
		return nil, fmt.Errorf("storage-mongo: recall: message %q sent at %d: %w", req.Id, m.ServerTime, storage.ErrRecallWindow)
	}
	evs, err := s.findByDK(ctx, []string{evKey})
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: recall: %w", err)
	}
	ev := evs[evKey]
	if ev == nil {
		ev = &msgDoc{DK: evKey, Conv: m.Conv, MID: m.MID, From: m.From, To: m.To,
			GroupID: m.GroupID, ChatType: m.ChatType, MsgType: m.MsgType, CreateTime: req.Time, ServerTime: req.Time,
			Recalled: true, RecallTime: req.Time, RecalledBy: req.By, Kind: storage.KindRecall, RecallID: m.MID, RecallSeq: m.Seq}
		taken, err := s.claim(ctx, []*msgDoc{ev})
		if err != nil {
			return nil, fmt.Errorf("storage-mongo: recall: event: %w", err)
		}
		if t := taken[evKey]; t != nil { // another gateway recalled it meanwhile
			ev = t
		}
	}
	_, err = s.msgs.UpdateOne(ctx, bson.D{{Key: "_id", Value: m.ID}}, bson.D{
		{Key: "$set", Value: bson.D{{Key: "recalled", Value: true}, {Key: "content", Value: ""},
			{Key: "rtime", Value: ev.RecallTime}, {Key: "rby", Value: ev.RecalledBy}, {Key: "rseq", Value: ev.Seq}}},
		{Key: "$unset", Value: bson.D{{Key: "extras", Value: ""}}},
	})
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: recall: mark: %w", err)
	}
	if err := s.inboxed(ctx, []*msgDoc{ev}, [][]string{req.Receivers}); err != nil {
		return nil, fmt.Errorf("storage-mongo: recall: %w", err)
	}
	m.Recalled, m.Content, m.Extras = true, "", nil
	m.RecallTime, m.RecalledBy, m.RecallSeq = ev.RecallTime, ev.RecalledBy, ev.Seq
	return &pb.RecallResponse{Message: m.message(), Event: ev.message()}, nil
}

// JoinGroup implements storage.Backend.
func (s *Store) JoinGroup(ctx context.Context, req *pb.JoinGroupRequest) (*pb.JoinGroupResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if req.GroupId == "" {
		return nil, fmt.Errorf("storage-mongo: join group: empty group id: %w", storage.ErrInvalid)
	}
	update := bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: "name", Value: req.Name}}}}
	if req.Name != "" {
		update = bson.D{{Key: "$set", Value: bson.D{{Key: "name", Value: req.Name}}}}
	}
	if _, err := s.groups.UpdateOne(ctx, bson.D{{Key: "_id", Value: req.GroupId}}, update, options.UpdateOne().SetUpsert(true)); err != nil {
		return nil, fmt.Errorf("storage-mongo: join group %s: %w", req.GroupId, err)
	}
	// A new member's pulled mark starts at the group's last seq (its join seq): it pulls
	// no read fan-out chat from before it joined. A member already there keeps its
	// document (the insert is refused as a duplicate), so joining again changes nothing.
	js, err := s.joinSeq(ctx, req.GroupId)
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: join group %s: %w", req.GroupId, err)
	}
	var docs []any
	for _, m := range req.Members {
		if m != "" {
			docs = append(docs, &memberDoc{ID: inboxID(req.GroupId, m), Group: req.GroupId, User: m, Pulled: js})
		}
	}
	if len(docs) > 0 {
		if _, err := s.members.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil && !onlyDuplicates(err) {
			return nil, fmt.Errorf("storage-mongo: join group %s: members: %w", req.GroupId, err)
		}
	}
	return &pb.JoinGroupResponse{}, nil
}

// LeaveGroup implements storage.Backend.
func (s *Store) LeaveGroup(ctx context.Context, req *pb.LeaveGroupRequest) (*pb.LeaveGroupResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if _, err := s.members.DeleteOne(ctx, bson.D{{Key: "_id", Value: inboxID(req.GroupId, req.Member)}}); err != nil {
		return nil, fmt.Errorf("storage-mongo: leave group %s: %w", req.GroupId, err)
	}
	return &pb.LeaveGroupResponse{}, nil
}

const defaultListLimit = 1000

func listOpts(req *pb.ListRequest) (bson.D, *options.FindOptionsBuilder, int) {
	limit := int(req.Limit)
	if limit <= 0 {
		limit = defaultListLimit
	}
	filter := bson.D{}
	if req.After != "" {
		filter = bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: req.After}}}}
	}
	return filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit) + 1), limit
}

// listPage reads one page of a listing (groups, users) in _id order, and whether more
// follow.
func listPage[T any](ctx context.Context, coll *mongo.Collection, req *pb.ListRequest, what string) ([]T, bool, error) {
	filter, opts, limit := listOpts(req)
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, false, fmt.Errorf("storage-mongo: list %s: %w", what, err)
	}
	var docs []T
	if err := cur.All(ctx, &docs); err != nil {
		return nil, false, fmt.Errorf("storage-mongo: list %s: %w", what, err)
	}
	if len(docs) > limit {
		return docs[:limit], true, nil
	}
	return docs, false, nil
}

// ListGroups implements storage.Backend.
func (s *Store) ListGroups(ctx context.Context, req *pb.ListRequest) (*pb.ListGroupsResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	docs, more, err := listPage[struct {
		ID   string `bson:"_id"`
		Name string `bson:"name"`
	}](ctx, s.groups, req, "groups")
	if err != nil {
		return nil, err
	}
	res := &pb.ListGroupsResponse{More: more}
	byID := map[string]*pb.Group{}
	ids := make([]string, len(docs))
	for i, d := range docs {
		g := &pb.Group{GroupId: d.ID, Name: d.Name}
		res.Groups = append(res.Groups, g)
		byID[d.ID], ids[i] = g, d.ID
	}
	if len(ids) == 0 {
		return res, nil
	}
	mcur, err := s.members.Find(ctx, bson.D{{Key: "g", Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetSort(bson.D{{Key: "g", Value: 1}, {Key: "u", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: list groups: members: %w", err)
	}
	var members []struct {
		G string `bson:"g"`
		U string `bson:"u"`
	}
	if err := mcur.All(ctx, &members); err != nil {
		return nil, fmt.Errorf("storage-mongo: list groups: members: %w", err)
	}
	for _, m := range members {
		if g := byID[m.G]; g != nil {
			g.Members = append(g.Members, m.U)
		}
	}
	return res, nil
}

// PutUser implements storage.Backend.
func (s *Store) PutUser(ctx context.Context, req *pb.PutUserRequest) (*pb.PutUserResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	u := req.GetUser()
	if u.GetUserId() == "" {
		return nil, fmt.Errorf("storage-mongo: put user: empty user id: %w", storage.ErrInvalid)
	}
	set := bson.D{}
	if u.Nick != "" {
		set = append(set, bson.E{Key: "nick", Value: u.Nick})
	}
	if u.Avatar != "" {
		set = append(set, bson.E{Key: "avatar", Value: u.Avatar})
	}
	update := bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: "since", Value: time.Now().UnixMilli()}}}}
	if len(set) > 0 {
		update = append(update, bson.E{Key: "$set", Value: set})
	}
	if _, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: u.UserId}}, update, options.UpdateOne().SetUpsert(true)); err != nil {
		return nil, fmt.Errorf("storage-mongo: put user %s: %w", u.UserId, err)
	}
	return &pb.PutUserResponse{}, nil
}

// ListUsers implements storage.Backend.
func (s *Store) ListUsers(ctx context.Context, req *pb.ListRequest) (*pb.ListUsersResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	docs, more, err := listPage[struct {
		ID     string `bson:"_id"`
		Nick   string `bson:"nick"`
		Avatar string `bson:"avatar"`
	}](ctx, s.users, req, "users")
	if err != nil {
		return nil, err
	}
	res := &pb.ListUsersResponse{More: more}
	for _, d := range docs {
		res.Users = append(res.Users, &pb.User{UserId: d.ID, Nick: d.Nick, Avatar: d.Avatar})
	}
	return res, nil
}

// Main runs the plugin: the main of the built-in plugin subprocess.
func Main() {
	s := &Store{}
	storage.Serve(s)
	_ = s.Close()
}
