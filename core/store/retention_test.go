package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// expiring is a store with due messages per chat type; it records the Expire calls.
type expiring struct {
	conn                  // nil: only Expire is called
	mu    sync.Mutex      // the janitor's goroutine calls while the test reads
	due   map[int32]int64 // chat type -> messages due
	calls []*pb.ExpireRequest
}

func (e *expiring) Expire(_ context.Context, r *pb.ExpireRequest) (*pb.ExpireResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, r)
	n := min(e.due[r.ChatType], int64(r.Limit))
	e.due[r.ChatType] -= n
	return &pb.ExpireResponse{Removed: n, More: e.due[r.ChatType] > 0}, nil
}

func (e *expiring) EraseUser(context.Context, *pb.EraseUserRequest) (*pb.EraseUserResponse, error) {
	return nil, errors.New("not used")
}

// fixedSource hands out one connection.
type fixedSource struct{ c conn }

func (f fixedSource) get(context.Context, time.Duration) (conn, error) { return f.c, nil }
func (fixedSource) failed(conn)                                        {}

func TestJanitorPassBatches(t *testing.T) {
	now := time.UnixMilli(10_000_000)
	tests := []struct {
		name      string
		ret       config.Retention
		due       map[int32]int64
		wantCalls []int32 // chat types called, in order
		want      map[string]int64
	}{
		{"nothing configured", config.Retention{}, map[int32]int64{2: 5}, nil, map[string]int64{}},
		{"private in batches", config.Retention{Private: time.Hour, Batch: 2}, map[int32]int64{2: 5, 1: 3},
			[]int32{2, 2, 2}, map[string]int64{"private": 5}},
		{"both kinds", config.Retention{Private: time.Hour, Group: time.Minute, Batch: 10}, map[int32]int64{2: 1, 1: 3},
			[]int32{2, 1}, map[string]int64{"private": 1, "group": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &expiring{due: tt.due}
			reg := prometheus.NewRegistry()
			j, err := newJanitor(fixedSource{st}, JanitorOptions{Retention: func() config.Retention { return tt.ret },
				Logger: quietLogger(), Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			j.clock = func() time.Time { return now }
			got, err := j.Pass(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) || got["private"] != tt.want["private"] || got["group"] != tt.want["group"] {
				t.Errorf("removed %v, want %v", got, tt.want)
			}
			var types []int32
			for _, c := range st.calls {
				types = append(types, c.ChatType)
				period := tt.ret.Private
				if c.ChatType == storage.ChatTypeGroup {
					period = tt.ret.Group
				}
				if c.BeforeMs != now.Add(-period).UnixMilli() || int(c.Limit) != tt.ret.Resolved().Batch {
					t.Errorf("call %v: want before %d and limit %d", c, now.Add(-period).UnixMilli(), tt.ret.Resolved().Batch)
				}
			}
			if len(types) != len(tt.wantCalls) || (len(types) > 0 && !equalTypes(types, tt.wantCalls)) {
				t.Errorf("calls for chat types %v, want %v", types, tt.wantCalls)
			}
			for kind, n := range tt.want {
				m := &dto.Metric{}
				if err := j.expired.WithLabelValues(kind).Write(m); err != nil || m.GetCounter().GetValue() != float64(n) {
					v := m.GetCounter().GetValue()
					t.Errorf("timgw_storage_expired_total{kind=%q} = %v, want %d", kind, v, n)
				}
			}
		})
	}
}

func equalTypes(a, b []int32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// noRetention is a store whose plugin does not implement retention.
type noRetention struct{ conn }

func TestJanitorUnsupportedKeepsEverything(t *testing.T) {
	j, err := newJanitor(fixedSource{noRetention{}}, JanitorOptions{Logger: quietLogger(),
		Retention: func() config.Retention { return config.Retention{Private: time.Hour} }})
	if err != nil {
		t.Fatal(err)
	}
	got, err := j.Pass(context.Background())
	if err != nil || got["private"] != 0 {
		t.Errorf("Pass without plugin support: %v, %v, want nothing and no error", got, err)
	}
}

func TestJanitorStartStop(t *testing.T) {
	st := &expiring{due: map[int32]int64{2: 3}}
	j, err := newJanitor(fixedSource{st}, JanitorOptions{Logger: quietLogger(),
		Retention: func() config.Retention { return config.Retention{Private: time.Hour, Interval: 100 * time.Millisecond} }})
	if err != nil {
		t.Fatal(err)
	}
	j.Stop() // before Start: returns at once
	j2, _ := newJanitor(fixedSource{st}, j.opts)
	j2.Start()
	deadline := time.Now().Add(20 * time.Second)
	for st.left() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	j2.Stop()
	if st.left() != 0 {
		t.Errorf("the running janitor left %d due messages", st.left())
	}
}

// left is how many messages are still due, of every kind.
func (e *expiring) left() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for _, v := range e.due {
		n += v
	}
	return n
}

// storedService returns the Service of a new bolt store holding the chats of envs.
func storedService(t *testing.T, envs ...router.Envelope) *Service {
	t.Helper()
	sup := startBolt(t, t.TempDir(), nil)
	d := NewDeliverer(sup, &deliveries{})
	for _, env := range envs {
		if _, err := d.Deliver(context.Background(), env); err != nil {
			t.Fatal(err)
		}
	}
	return NewService(sup)
}

func TestServiceErase(t *testing.T) {
	svc := storedService(t, privateEnv("alice", "bob", "m1", "one"), privateEnv("bob", "alice", "m2", "two"),
		privateEnv("carol", "alice", "m3", "three"))
	ctx := context.Background()
	got, err := svc.Erase(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if got.Messages != 2 || got.Conversations != 1 {
		t.Errorf("Erase(bob): %+v, want 2 messages of 1 conversation", got)
	}
	off, err := svc.Offline(ctx, OfflineQuery{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range off.Messages {
		ids = append(ids, string(e.Chat.ID))
	}
	if len(ids) != 1 || ids[0] != "m3" {
		t.Errorf("alice's offline messages after bob's erasure: %v, want [m3]", ids)
	}
	if _, err := svc.Erase(ctx, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("Erase(empty): %v, want ErrInvalid", err)
	}
}

// TestServiceErasable: nil for a plugin that erases (bolt), ErrUnsupported for one
// that does not.
func TestServiceErasable(t *testing.T) {
	tests := []struct {
		name string
		svc  *Service
		want error
	}{
		{"bolt", storedService(t), nil},
		{"no retention", &Service{src: fixedSource{noRetention{}}}, storage.ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.svc.Erasable(context.Background()); !errors.Is(err, tt.want) {
				t.Errorf("Erasable: %v, want %v", err, tt.want)
			}
		})
	}
}
