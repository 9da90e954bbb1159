package storagebolt

import (
	"context"
	"fmt"
	"maps"

	"google.golang.org/protobuf/proto"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

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
		rc := &rec{lsn: s.lsn + uint64(len(recs)) + 1, conv: m.Conv, seq: m.Seq, dedup: dk, msg: mb, rf: m.ReadFanout}
		receivers := r.Receivers
		if m.ReadFanout {
			receivers = nil // stored once: members pull it (readfanout.go)
		}
		for _, u := range receivers {
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
