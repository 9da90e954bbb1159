package storagemongo

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Retention and erasure (storage.Retainer). Removing messages: their documents, the inbox
// entries naming them (by ref, indexed), and the heads pointing at them (moved back to
// the conversation's last remaining chat, or removed); the seq hints of their
// conversations are raised to the removed seqs, so that seqs are never reused.

var _ storage.Retainer = (*Store)(nil)

// defaultExpireLimit bounds an Expire that gives no limit.
const defaultExpireLimit = 1000

// expireIndex is the index of Expire's query (ct equal, stime below a bound): a pass
// reads the due messages only, oldest first, instead of every message of the chat type.
var expireIndex = bson.D{{Key: "ct", Value: 1}, {Key: "stime", Value: 1}}

// ensureRetentionIndexes indexes inbox entries by the message they name, and messages by
// chat type and server time.
func (s *Store) ensureRetentionIndexes(ctx context.Context) error {
	if _, err := s.inbox.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "ref", Value: 1}}}); err != nil {
		return fmt.Errorf("storage-mongo: create index on inbox: %w", err)
	}
	if _, err := s.msgs.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: expireIndex}); err != nil {
		return fmt.Errorf("storage-mongo: create index on messages: %w", err)
	}
	return nil
}

// msgRef is the part of a message document removal needs.
type msgRef struct {
	ID   string `bson:"_id"`
	Conv string `bson:"conv"`
	Seq  int64  `bson:"seq"`
}

var refProjection = bson.D{{Key: "_id", Value: 1}, {Key: "conv", Value: 1}, {Key: "seq", Value: 1}}

// Expire implements storage.Retainer.
func (s *Store) Expire(ctx context.Context, req *pb.ExpireRequest) (*pb.ExpireResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if err := storage.CheckExpire(req); err != nil {
		return nil, err
	}
	limit := int64(req.Limit)
	if limit == 0 {
		limit = defaultExpireLimit
	}
	// On MongoDB an index scan of expireIndex, bounded by the chat type and the time: it
	// reads only the due messages. FerretDB 1.x (the tests' server) plans it as a
	// sequential scan with ct pushed down (explain: "Seq Scan", filter
	// `_jsonb -> 'ct' @> '2'`), the time filtered in FerretDB, index or not.
	filter := bson.D{{Key: "ct", Value: req.ChatType}, {Key: "stime", Value: bson.D{{Key: "$lt", Value: req.BeforeMs}}}}
	refs, err := s.findRefs(ctx, filter, options.Find().SetProjection(refProjection).SetLimit(limit+1))
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: expire: %w", err)
	}
	res := &pb.ExpireResponse{}
	if int64(len(refs)) > limit {
		refs, res.More = refs[:limit], true
	}
	res.Removed, res.InboxRemoved, err = s.removeRefs(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: expire: %w", err)
	}
	return res, nil
}

// EraseUser implements storage.Retainer.
func (s *Store) EraseUser(ctx context.Context, req *pb.EraseUserRequest) (*pb.EraseUserResponse, error) {
	if err := s.userOp("erase user", req.User); err != nil {
		return nil, err
	}
	res, err := s.erase(ctx, req.User)
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: erase user %s: %w", req.User, err)
	}
	return res, nil
}

func (s *Store) erase(ctx context.Context, user string) (*pb.EraseUserResponse, error) {
	res := &pb.EraseUserResponse{}
	// Every private conversation of the user, whole: found from the chats of either side.
	private, err := s.findRefs(ctx, bson.D{{Key: "ct", Value: storage.ChatTypePrivate},
		{Key: "$or", Value: bson.A{bson.D{{Key: "from", Value: user}}, bson.D{{Key: "to", Value: user}}}}},
		options.Find().SetProjection(refProjection))
	if err != nil {
		return nil, err
	}
	var convs []string
	seen := map[string]bool{}
	for _, r := range private {
		if !seen[r.Conv] && storage.Member(r.Conv, user) {
			seen[r.Conv] = true
			convs = append(convs, r.Conv)
		}
	}
	var refs []msgRef
	if len(convs) > 0 {
		if refs, err = s.findRefs(ctx, bson.D{{Key: "conv", Value: bson.D{{Key: "$in", Value: convs}}}},
			options.Find().SetProjection(refProjection)); err != nil {
			return nil, err
		}
	}
	// Every message the user sent to a group (chats, and recall events naming them).
	sent, err := s.findRefs(ctx, bson.D{{Key: "ct", Value: storage.ChatTypeGroup}, {Key: "from", Value: user}},
		options.Find().SetProjection(refProjection))
	if err != nil {
		return nil, err
	}
	refs = append(refs, sent...)
	if res.Messages, res.Inbox, err = s.removeRefs(ctx, refs); err != nil {
		return nil, err
	}
	res.Conversations = int64(len(convs))
	// The user's own inbox, cursors (and the peers' of the private conversations),
	// record and memberships.
	n, err := s.inbox.DeleteMany(ctx, bson.D{{Key: "user", Value: user}})
	if err != nil {
		return nil, fmt.Errorf("inbox: %w", err)
	}
	res.Inbox += n.DeletedCount
	cursorFilter := bson.D{{Key: "u", Value: user}}
	if len(convs) > 0 {
		cursorFilter = bson.D{{Key: "$or", Value: bson.A{cursorFilter, bson.D{{Key: "c", Value: bson.D{{Key: "$in", Value: convs}}}}}}}
	}
	if _, err := s.cursorsColl().DeleteMany(ctx, cursorFilter); err != nil {
		return nil, fmt.Errorf("cursors: %w", err)
	}
	if _, err := s.users.DeleteOne(ctx, bson.D{{Key: "_id", Value: user}}); err != nil {
		return nil, fmt.Errorf("user record: %w", err)
	}
	if _, err := s.pullsColl().DeleteOne(ctx, bson.D{{Key: "_id", Value: user}}); err != nil { // a lock left by a crash
		return nil, fmt.Errorf("pull lock: %w", err)
	}
	m, err := s.members.DeleteMany(ctx, bson.D{{Key: "u", Value: user}})
	if err != nil {
		return nil, fmt.Errorf("memberships: %w", err)
	}
	res.Groups = m.DeletedCount
	return res, nil
}

func (s *Store) findRefs(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]msgRef, error) {
	cur, err := s.msgs.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("find messages: %w", err)
	}
	var refs []msgRef
	if err := cur.All(ctx, &refs); err != nil {
		return nil, fmt.Errorf("find messages: %w", err)
	}
	return refs, nil
}

// removeRefs removes the messages refs, the inbox entries naming them and the heads
// pointing at them; it answers the messages and entries removed.
func (s *Store) removeRefs(ctx context.Context, refs []msgRef) (msgs, inbox int64, err error) {
	if len(refs) == 0 {
		return 0, 0, nil
	}
	ids := make([]string, len(refs))
	last := map[string]int64{}
	for i, r := range refs {
		ids[i] = r.ID
		last[r.Conv] = max(last[r.Conv], r.Seq)
	}
	// The hints first: a seq removed is never claimed again, whatever fails after.
	if err := s.raiseHints(ctx, last); err != nil {
		return 0, 0, err
	}
	byID := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}
	m, err := s.msgs.DeleteMany(ctx, byID)
	if err != nil {
		return 0, 0, fmt.Errorf("delete messages: %w", err)
	}
	in, err := s.inbox.DeleteMany(ctx, bson.D{{Key: "ref", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return 0, 0, fmt.Errorf("delete inbox entries: %w", err)
	}
	for conv := range last {
		if err := s.fixHead(ctx, conv); err != nil {
			return 0, 0, err
		}
	}
	return m.DeletedCount, in.DeletedCount, nil
}

// fixHead points conv's head at its last remaining chat when the chat it named is
// gone, or removes the head when none remains. The update is conditional on the old
// head, so that a chat stored meanwhile keeps the head it wrote.
func (s *Store) fixHead(ctx context.Context, conv string) error {
	var h headDoc
	err := s.headsColl().FindOne(ctx, bson.D{{Key: "_id", Value: conv}}).Decode(&h)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("head of %s: %w", conv, err)
	}
	if n, err := s.msgs.CountDocuments(ctx, bson.D{{Key: "_id", Value: docID(conv, h.Seq)}}); err != nil || n > 0 {
		return err
	}
	old := bson.D{{Key: "_id", Value: conv}, {Key: "seq", Value: h.Seq}}
	var d msgDoc
	err = s.msgs.FindOne(ctx, bson.D{{Key: "conv", Value: conv}, {Key: "kind", Value: storage.KindChat}},
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		_, err = s.headsColl().DeleteOne(ctx, old)
	} else if err == nil {
		_, err = s.headsColl().UpdateOne(ctx, old, bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: d.Seq}, {Key: "stime", Value: d.ServerTime}}}})
	}
	if err != nil {
		return fmt.Errorf("head of %s: %w", conv, err)
	}
	return nil
}
