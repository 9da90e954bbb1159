package storagemongo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/timgw/timgw/plugins/storage"
)

// Read fan-out (large groups, README.md "Read fan-out"). A chat flagged read_fanout is
// stored once (its document has rf: true) and writes no inbox entries; its group's
// document in groups gets rf: true (before the chat is inserted, so that no stored chat
// belongs to an unflagged group). Each membership document (members, _id group + user)
// carries the member's pulled mark pm: the highest seq of the group's conversation
// already pulled (or confirmed by receipt), set to the group's last seq when the member
// joins. Inbox first pulls: for each rf group of the user (members by {u: 1}, then the
// flagged ones among them by _id), the group's chats after the mark (by {conv: 1, seq: 1})
// become ordinary inbox entries, then the mark is raised with $max.
//
// An entry's _id is the user and the message's _id (as for write fan-out), so a chat
// gets at most one entry per user whoever writes it, and the mark is raised only after
// the entries exist, so a pull cut short by a crash is redone (its entries already
// written are kept) by the next Inbox. Pulls for one user run one after the other, in
// any number of processes (lockUser, lockPull), so that an entry confirmed after one
// pull is not written again by another that read the older mark.

// pullChunk is how many chats of a group one pull round reads; a round writes their
// entries, then raises the mark, so a long backlog is pulled in several bounded writes.
var pullChunk int64 = 1000

// pullGrace is how long a hole in a group's seqs may be one that is still filling: a
// pull stops before a hole whose next chat is younger (its server time), so that a chat
// with a lower seq that becomes visible late is not passed by the mark for good. Seqs
// are claimed in order (seq.go: seq k is only tried once k-1 is stored), so holes are
// left by expiry and erasure, which this only delays by at most pullGrace.
var pullGrace = time.Minute

// memberDoc is a document of the members collection.
type memberDoc struct {
	ID     string `bson:"_id"` // group + member, length-prefixed
	Group  string `bson:"g"`
	User   string `bson:"u"`
	Pulled int64  `bson:"pm"` // pulled mark: the seqs up to it are not pulled (starts at the join seq)
}

// rfGroups remembers the groups this process flagged read fan-out (groups documents
// are never removed, so the flag, once written, stays), and serializes this process's
// pulls for one user: a pull starts after the one before it raised the marks, so within
// a process a chat is pulled once even when a user's devices ask at once.
type rfGroups struct {
	m sync.Map

	mu    sync.Mutex
	users map[string]*userLock // the users with a pull running or waiting
}

type userLock struct {
	sync.Mutex
	n int // pulls holding or waiting for it
}

// lockUser waits for user's pull in this process to end and returns the unlock.
func (r *rfGroups) lockUser(user string) func() {
	r.mu.Lock()
	if r.users == nil {
		r.users = map[string]*userLock{}
	}
	l := r.users[user]
	if l == nil {
		l = &userLock{}
		r.users[user] = l
	}
	l.n++
	r.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		r.mu.Lock()
		if l.n--; l.n == 0 {
			delete(r.users, user)
		}
		r.mu.Unlock()
	}
}

// ensureReadFanoutIndexes indexes memberships by user: a pull finds the user's groups.
func (s *Store) ensureReadFanoutIndexes(ctx context.Context) error {
	_, err := s.members.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "u", Value: 1}, {Key: "g", Value: 1}}})
	if err != nil {
		return fmt.Errorf("storage-mongo: create index on members: %w", err)
	}
	return nil
}

// flagReadFanout marks the groups of the read fan-out chats among docs (once per group
// and process).
func (s *Store) flagReadFanout(ctx context.Context, docs []*msgDoc) error {
	for _, d := range docs {
		if !d.ReadFanout {
			continue
		}
		if _, done := s.rf.m.Load(d.GroupID); done {
			continue
		}
		flag := func() error {
			_, err := s.groups.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.GroupID}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "rf", Value: true}}}}, options.UpdateOne().SetUpsert(true))
			return err
		}
		err := flag()
		if mongo.IsDuplicateKeyError(err) { // another process created the group meanwhile
			err = flag()
		}
		if err != nil {
			return fmt.Errorf("flag group %s read fan-out: %w", d.GroupID, err)
		}
		s.rf.m.Store(d.GroupID, true)
	}
	return nil
}

// pull copies the read fan-out chats of user's groups after the user's pulled marks
// into the user's inbox, and raises the marks. When there is something to pull it holds
// the user's pull lock (lockPull): pulls for one user, from any process, run one after
// the other, each from the marks the one before left, so that an entry confirmed after
// one pull is never written again by another that started before.
func (s *Store) pull(ctx context.Context, user string) error {
	defer s.rf.lockUser(user)()
	ms, err := s.rfMemberships(ctx, user)
	if err != nil || len(ms) == 0 {
		return err
	}
	due := false
	for _, m := range ms {
		n, err := s.msgs.CountDocuments(ctx, bson.D{{Key: "conv", Value: storage.GroupConv(m.Group)},
			{Key: "seq", Value: bson.D{{Key: "$gt", Value: m.Pulled}}}}, options.Count().SetLimit(1))
		if err != nil {
			return fmt.Errorf("pull group %s: %w", m.Group, err)
		}
		if due = n > 0; due {
			break
		}
	}
	if !due {
		return nil
	}
	lock, err := s.lockPull(ctx, user)
	if err != nil {
		return err
	}
	defer lock.release(ctx)
	if ms, err = s.rfMemberships(ctx, user); err != nil { // the marks as the last pull left them
		return err
	}
	for _, m := range ms {
		if err := s.pullGroup(ctx, m, lock); err != nil {
			return fmt.Errorf("pull group %s: %w", m.Group, err)
		}
	}
	return nil
}

// rfMemberships returns user's memberships of groups flagged read fan-out.
func (s *Store) rfMemberships(ctx context.Context, user string) ([]memberDoc, error) {
	cur, err := s.members.Find(ctx, bson.D{{Key: "u", Value: user}})
	if err != nil {
		return nil, fmt.Errorf("memberships: %w", err)
	}
	var ms []memberDoc
	if err := cur.All(ctx, &ms); err != nil {
		return nil, fmt.Errorf("memberships: %w", err)
	}
	if len(ms) == 0 {
		return nil, nil
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.Group
	}
	cur, err = s.groups.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "rf", Value: true}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read fan-out groups: %w", err)
	}
	var flagged []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &flagged); err != nil {
		return nil, fmt.Errorf("read fan-out groups: %w", err)
	}
	isRF := make(map[string]bool, len(flagged))
	for _, g := range flagged {
		isRF[g.ID] = true
	}
	return slices.DeleteFunc(ms, func(m memberDoc) bool { return !isRF[m.Group] }), nil
}

// pullLease is how long a pull lock stays valid without a renewal (its holder renews it
// after each round): a lock older than that was left by a process that died, and is
// taken over. A holder whose lock was taken over (a round outlived the lease) gives up
// at its next renewal, so two pulls overlap by one round at most.
var pullLease = 10 * time.Second

// pullToken numbers this process's pull locks (with a random prefix: another process
// never takes the same token).
var pullToken = struct {
	prefix string
	n      atomic.Int64
}{prefix: randomHex()}

func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// pullLock is a user's pull lock held (lockPull).
type pullLock struct {
	pulls     *mongo.Collection
	user, tok string
	at        time.Time // taken or last renewed
}

// renew extends the lock by pullLease (when a quarter of it has passed since it was
// taken or renewed); it fails when the lock was taken over.
func (l *pullLock) renew(ctx context.Context) error {
	now := time.Now()
	if now.Sub(l.at) < pullLease/4 {
		return nil
	}
	l.at = now
	res, err := l.pulls.UpdateOne(ctx, bson.D{{Key: "_id", Value: l.user}, {Key: "tok", Value: l.tok}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "at", Value: now.UnixMilli()}}}})
	if err != nil {
		return fmt.Errorf("pull lock: %w", err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("pull lock of %s: taken over by another pull (this one outlived %v)", l.user, pullLease)
	}
	return nil
}

// release removes the lock, unless it was taken over.
func (l *pullLock) release(ctx context.Context) {
	_, _ = l.pulls.DeleteOne(context.WithoutCancel(ctx), bson.D{{Key: "_id", Value: l.user}, {Key: "tok", Value: l.tok}})
}

// lockPull takes user's pull lock: a document of the pulls collection with _id user,
// which only one process can insert (the unique _id decides, on FerretDB too). It waits
// while another holds it, and takes over one not renewed for pullLease.
func (s *Store) lockPull(ctx context.Context, user string) (*pullLock, error) {
	tok := pullToken.prefix + "-" + strconv.FormatInt(pullToken.n.Add(1), 10)
	pulls := s.pullsColl()
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		now := time.Now().UnixMilli()
		_, err := pulls.InsertOne(ctx, bson.D{{Key: "_id", Value: user}, {Key: "tok", Value: tok}, {Key: "at", Value: now}})
		if err == nil {
			return &pullLock{pulls: pulls, user: user, tok: tok, at: time.UnixMilli(now)}, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return nil, fmt.Errorf("pull lock: %w", err)
		}
		var held struct {
			Tok string `bson:"tok"`
			At  int64  `bson:"at"`
		}
		err = pulls.FindOne(ctx, bson.D{{Key: "_id", Value: user}}).Decode(&held)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments): // released meanwhile
			continue
		case err != nil:
			return nil, fmt.Errorf("pull lock: %w", err)
		case held.At < now-pullLease.Milliseconds(): // its holder died
			if _, err := pulls.DeleteOne(ctx, bson.D{{Key: "_id", Value: user}, {Key: "tok", Value: held.Tok}}); err != nil {
				return nil, fmt.Errorf("pull lock: %w", err)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pull lock of %s held by another pull: %w", user, ctx.Err())
		case <-time.After(wait):
		}
	}
}

func (s *Store) pullsColl() *mongo.Collection { return s.db.Collection("pulls") }

// pullGroup pulls one group's chats for member m, a chunk at a time: entries first,
// then the mark.
func (s *Store) pullGroup(ctx context.Context, m memberDoc, lock *pullLock) error {
	conv := storage.GroupConv(m.Group)
	mark := m.Pulled
	for {
		young := time.Now().Add(-pullGrace).UnixMilli()
		cur, err := s.msgs.Find(ctx, bson.D{{Key: "conv", Value: conv}, {Key: "seq", Value: bson.D{{Key: "$gt", Value: mark}}}},
			options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).SetLimit(pullChunk).SetProjection(bson.D{
				{Key: "_id", Value: 1}, {Key: "conv", Value: 1}, {Key: "seq", Value: 1}, {Key: "from", Value: 1},
				{Key: "kind", Value: 1}, {Key: "rf", Value: 1}, {Key: "stime", Value: 1}}))
		if err != nil {
			return fmt.Errorf("chats after %d: %w", mark, err)
		}
		var docs []*msgDoc
		if err := cur.All(ctx, &docs); err != nil {
			return fmt.Errorf("chats after %d: %w", mark, err)
		}
		if len(docs) == 0 {
			return nil
		}
		// Write fan-out chats (a group that was small) and recall events have their
		// entries already, and the member's own chats get none: the mark passes them.
		// A young hole stops the round (pullGrace).
		full := int64(len(docs)) == pullChunk
		var due []*msgDoc
		prev := mark
		for i, d := range docs {
			if d.Seq != prev+1 && d.ServerTime > young {
				docs, full = docs[:i], false
				break
			}
			prev = d.Seq
			if d.ReadFanout && d.Kind == storage.KindChat && d.From != m.User {
				due = append(due, d)
			}
		}
		if len(docs) == 0 {
			return nil
		}
		if err := lock.renew(ctx); err != nil { // still ours: write
			return err
		}
		if len(due) > 0 {
			receivers := make([][]string, len(due))
			for i := range due {
				receivers[i] = []string{m.User}
			}
			if err := s.addInbox(ctx, due, receivers); err != nil {
				return err
			}
		}
		mark = docs[len(docs)-1].Seq
		if err := s.raiseMark(ctx, m.ID, mark); err != nil {
			return err
		}
		if !full {
			return nil
		}
	}
}

// raiseMark raises the pulled mark of a membership (member _id); a membership that is
// gone (the user left) stays gone.
func (s *Store) raiseMark(ctx context.Context, memberID string, seq int64) error {
	_, err := s.members.UpdateOne(ctx, bson.D{{Key: "_id", Value: memberID}},
		bson.D{{Key: "$max", Value: bson.D{{Key: "pm", Value: seq}}}})
	if err != nil {
		return fmt.Errorf("pulled mark: %w", err)
	}
	return nil
}

// joinSeq is the seq a member joining group now starts after: the group's last seq, or
// the last one ever claimed when later ones were removed (the seq hint), so that the
// next chat follows the mark without a hole.
func (s *Store) joinSeq(ctx context.Context, group string) (int64, error) {
	conv := storage.GroupConv(group)
	last, err := s.lastSeq(ctx, conv)
	if err != nil {
		return 0, err
	}
	hints, err := s.seqHints(ctx, []string{conv})
	if err != nil {
		return 0, err
	}
	return max(last, hints[conv]), nil
}
