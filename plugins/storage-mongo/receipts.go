package storagemongo

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Receipts and conversation lists: two more collections (README.md, "Schema").
//
//	cursors  _id user + conv (length-prefixed); u, c, d (delivered), r (read)
//	heads    _id conv; seq, stime of its last chat; us: the two users of a private one
//
// Append writes a conversation's head (one write per conversation of the batch, whatever
// the group's size) and raises the sender's cursors.

// cursorDoc is a document of the cursors collection.
type cursorDoc struct {
	ID        string `bson:"_id"`
	User      string `bson:"u"`
	Conv      string `bson:"c"`
	Delivered int64  `bson:"d"`
	Read      int64  `bson:"r"`
}

// headDoc is a document of the heads collection.
type headDoc struct {
	Conv  string   `bson:"_id"`
	Seq   int64    `bson:"seq"`
	STime int64    `bson:"stime"`
	Users []string `bson:"us,omitempty"`
}

func (s *Store) cursorsColl() *mongo.Collection { return s.db.Collection("cursors") }
func (s *Store) headsColl() *mongo.Collection   { return s.db.Collection("heads") }

// ensureReceiptIndexes creates the index that lists a user's private conversations.
func (s *Store) ensureReceiptIndexes(ctx context.Context) error {
	_, err := s.headsColl().Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "us", Value: 1}, {Key: "stime", Value: -1}}})
	if err != nil {
		return fmt.Errorf("storage-mongo: create index on heads: %w", err)
	}
	return nil
}

// afterAppend writes the heads of the conversations of docs (the stored chats) and raises
// their senders' cursors, a few writes side by side.
func (s *Store) afterAppend(ctx context.Context, docs []*msgDoc) error {
	heads := map[string]*msgDoc{}
	type uc struct{ user, conv string }
	raise := map[uc]int64{}
	for _, d := range docs {
		if h := heads[d.Conv]; h == nil || d.Seq > h.Seq {
			heads[d.Conv] = d
		}
		k := uc{d.From, d.Conv}
		raise[k] = max(raise[k], d.Seq)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, d := range heads {
		g.Go(func() error { return s.putHead(gctx, d) })
	}
	for k, seq := range raise {
		g.Go(func() error {
			_, err := s.raiseCursor(gctx, k.user, k.conv, seq, seq)
			return err
		})
	}
	return g.Wait()
}

// putHead makes d the head of its conversation unless a later chat is already.
func (s *Store) putHead(ctx context.Context, d *msgDoc) error {
	h := headDoc{Conv: d.Conv, Seq: d.Seq, STime: d.ServerTime}
	if grp, a, b, err := storage.ParseConv(d.Conv); err == nil && grp == "" {
		h.Users = []string{a, b}
	}
	res, err := s.headsColl().UpdateOne(ctx, bson.D{{Key: "_id", Value: d.Conv}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: d.Seq}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: h.Seq}, {Key: "stime", Value: h.STime}, {Key: "us", Value: h.Users}}}})
	if err != nil {
		return fmt.Errorf("head of %s: %w", d.Conv, err)
	}
	if res.MatchedCount > 0 {
		return nil
	}
	if _, err := s.headsColl().InsertOne(ctx, h); err != nil && !mongo.IsDuplicateKeyError(err) { // a later head exists
		return fmt.Errorf("head of %s: %w", d.Conv, err)
	}
	return nil
}

// raiseCursor raises user's cursors of conv and returns them as stored.
func (s *Store) raiseCursor(ctx context.Context, user, conv string, delivered, read int64) (*pb.Cursor, error) {
	c := storage.RaiseCursor(nil, delivered, read)
	var doc cursorDoc
	raise := func() error {
		return s.cursorsColl().FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: inboxID(user, conv)}},
			bson.D{{Key: "$max", Value: bson.D{{Key: "d", Value: c.Delivered}, {Key: "r", Value: c.Read}}},
				{Key: "$set", Value: bson.D{{Key: "u", Value: user}, {Key: "c", Value: conv}}}},
			options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&doc)
	}
	err := raise()
	if mongo.IsDuplicateKeyError(err) { // another process created the document meanwhile: update it
		err = raise()
	}
	if err != nil {
		return nil, fmt.Errorf("cursor of %s in %s: %w", user, conv, err)
	}
	return &pb.Cursor{Conv: conv, Delivered: max(doc.Delivered, doc.Read), Read: doc.Read}, nil
}

// SetCursor implements storage.Backend.
func (s *Store) SetCursor(ctx context.Context, req *pb.SetCursorRequest) (*pb.SetCursorResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if err := storage.CheckCursor(req); err != nil {
		return nil, fmt.Errorf("storage-mongo: %w", err)
	}
	c, err := s.raiseCursor(ctx, req.User, req.Conv, req.Delivered, req.Read)
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: set cursor: %w", err)
	}
	res := &pb.SetCursorResponse{Cursor: c}
	if max(req.Delivered, req.Read) == 0 || c.Delivered == 0 {
		return res, nil
	}
	// A group's chats delivered by receipt are never pulled (readfanout.go): the mark
	// first, so that a pull after the entries below are removed does not bring them back,
	// and not while this process pulls for the user (one that read the older mark would).
	if g, _, _, err := storage.ParseConv(req.Conv); err == nil && g != "" {
		defer s.rf.lockUser(req.User)()
		if err := s.raiseMark(ctx, inboxID(g, req.User), c.Delivered); err != nil {
			return nil, fmt.Errorf("storage-mongo: set cursor: %w", err)
		}
	}
	// Entries of the conversation up to the delivered seq: refs are conv#seq with a
	// fixed-width seq, so they compare as seqs.
	del, err := s.inbox.DeleteMany(ctx, bson.D{{Key: "user", Value: req.User}, {Key: "conv", Value: req.Conv},
		{Key: "ref", Value: bson.D{{Key: "$lte", Value: docID(req.Conv, c.Delivered)}}}})
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: set cursor: inbox: %w", err)
	}
	res.Removed = del.DeletedCount
	return res, nil
}

// cursorsOf reads user's cursors of convs, by conversation.
func (s *Store) cursorsOf(ctx context.Context, user string, convs []string) (map[string]*pb.Cursor, error) {
	out := make(map[string]*pb.Cursor, len(convs))
	if len(convs) == 0 {
		return out, nil
	}
	ids := make([]string, len(convs))
	for i, c := range convs {
		ids[i] = inboxID(user, c)
	}
	cur, err := s.cursorsColl().Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, err
	}
	var docs []cursorDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	for _, d := range docs {
		out[d.Conv] = &pb.Cursor{Conv: d.Conv, Delivered: max(d.Delivered, d.Read), Read: d.Read}
	}
	return out, nil
}

// userOp checks a request about user (op names it).
func (s *Store) userOp(op, user string) error {
	if err := s.opened(); err != nil {
		return err
	}
	if user == "" {
		return fmt.Errorf("storage-mongo: %s: empty user: %w", op, storage.ErrInvalid)
	}
	return nil
}

func findHeads(ctx context.Context, coll *mongo.Collection, filter bson.D, opts *options.FindOptionsBuilder) ([]headDoc, error) {
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	var heads []headDoc
	if err := cur.All(ctx, &heads); err != nil {
		return nil, err
	}
	return heads, nil
}

// Cursors implements storage.Backend.
func (s *Store) Cursors(ctx context.Context, req *pb.CursorsRequest) (*pb.CursorsResponse, error) {
	if err := s.userOp("cursors", req.User); err != nil {
		return nil, err
	}
	got, err := s.cursorsOf(ctx, req.User, req.Convs)
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: cursors of %s: %w", req.User, err)
	}
	res := &pb.CursorsResponse{}
	for _, conv := range req.Convs {
		if c := got[conv]; c != nil && (c.Delivered > 0 || c.Read > 0) {
			res.Cursors = append(res.Cursors, c)
			delete(got, conv) // once, even when asked twice
		}
	}
	return res, nil
}

// Conversations implements storage.Backend: one query on heads (the user's private
// conversations by the us index, the groups by _id), then for the page the last chats,
// both sides' cursors and one count per conversation.
func (s *Store) Conversations(ctx context.Context, req *pb.ConversationsRequest) (*pb.ConversationsResponse, error) {
	if err := s.userOp("conversations", req.User); err != nil {
		return nil, err
	}
	res, err := s.conversations(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("storage-mongo: conversations of %s: %w", req.User, err)
	}
	return res, nil
}

func (s *Store) conversations(ctx context.Context, req *pb.ConversationsRequest) (*pb.ConversationsResponse, error) {
	groups := make([]string, len(req.Groups))
	for i, g := range req.Groups {
		groups[i] = storage.GroupConv(g)
	}
	ofUser := bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: "us", Value: req.User}},
		bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: groups}}}},
	}}
	filter := bson.D{ofUser}
	if req.Before > 0 {
		filter = append(filter, bson.E{Key: "stime", Value: bson.D{{Key: "$lt", Value: req.Before}}})
	}
	opts := options.Find().SetSort(bson.D{{Key: "stime", Value: -1}, {Key: "_id", Value: 1}})
	if req.Limit > 0 {
		opts.SetLimit(int64(req.Limit) + 1)
	}
	heads, err := findHeads(ctx, s.headsColl(), filter, opts)
	if err != nil {
		return nil, err
	}
	res := &pb.ConversationsResponse{}
	if req.Limit > 0 && len(heads) > int(req.Limit) {
		res.More = true
		if t := heads[req.Limit-1].STime; heads[req.Limit].STime == t {
			// A page ends between two server times, never inside one (before is
			// exclusive): every head of the page's last time joins it.
			same, err := findHeads(ctx, s.headsColl(), bson.D{ofUser, {Key: "stime", Value: t}},
				options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
			if err != nil {
				return nil, err
			}
			heads = append(slices.DeleteFunc(heads, func(h headDoc) bool { return h.STime == t }), same...)
			older, err := s.headsColl().CountDocuments(ctx, bson.D{ofUser, {Key: "stime", Value: bson.D{{Key: "$lt", Value: t}}}},
				options.Count().SetLimit(1))
			if err != nil {
				return nil, err
			}
			res.More = older > 0
		} else {
			heads = heads[:req.Limit]
		}
	}
	refs := make([]string, len(heads))
	convs := make([]string, len(heads))
	peers := map[string][]string{} // peer -> private conversations
	for i, h := range heads {
		refs[i], convs[i] = docID(h.Conv, h.Seq), h.Conv
		if len(h.Users) == 2 {
			peer := h.Users[0]
			if peer == req.User {
				peer = h.Users[1]
			}
			peers[peer] = append(peers[peer], h.Conv)
		}
	}
	last, err := s.loadRefs(ctx, refs)
	if err != nil {
		return nil, err
	}
	mine, err := s.cursorsOf(ctx, req.User, convs)
	if err != nil {
		return nil, err
	}
	theirs := map[string]*pb.Cursor{}
	for peer, cs := range peers {
		got, err := s.cursorsOf(ctx, peer, cs)
		if err != nil {
			return nil, err
		}
		for conv, c := range got {
			theirs[conv] = c
		}
	}
	for i, h := range heads {
		m := last[refs[i]]
		if m == nil {
			return nil, fmt.Errorf("last message %s missing", refs[i])
		}
		cv := &pb.Conversation{Conv: h.Conv, Last: m.message(), LastTime: h.STime, Mine: mine[h.Conv]}
		if cv.Mine == nil {
			cv.Mine = &pb.Cursor{Conv: h.Conv}
		}
		if len(h.Users) == 2 {
			cv.Peer = theirs[h.Conv]
			if cv.Peer == nil {
				cv.Peer = &pb.Cursor{Conv: h.Conv}
			}
		}
		n, err := s.msgs.CountDocuments(ctx, bson.D{{Key: "conv", Value: h.Conv},
			{Key: "seq", Value: bson.D{{Key: "$gt", Value: cv.Mine.Read}}}, {Key: "kind", Value: storage.KindChat},
			{Key: "from", Value: bson.D{{Key: "$ne", Value: req.User}}}, {Key: "recalled", Value: bson.D{{Key: "$ne", Value: true}}}})
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return nil, fmt.Errorf("unread of %s: %w", h.Conv, err)
		}
		cv.Unread = n
		res.Conversations = append(res.Conversations, cv)
	}
	return res, nil
}
