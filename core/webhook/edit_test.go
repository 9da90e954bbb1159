package webhook

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/timgw/timgw/core/hook"
)

// editor is an Editor that drops user.online, adds extra to the others and records
// the requests it saw.
type editor struct {
	mu   sync.Mutex
	seen []hook.EventRequest
}

func (e *editor) Event(_ context.Context, req *hook.EventRequest) hook.EventReply {
	e.mu.Lock()
	e.seen = append(e.seen, *req)
	e.mu.Unlock()
	if req.Type == TypeUserOnline {
		return hook.EventReply{Drop: true, Script: "x.lua"}
	}
	return hook.EventReply{Extra: map[string]any{"priority": "high", "user": req.User}}
}

var _ Editor = (*editor)(nil)

// TestEditorRunsOncePerEvent: with two endpoints, the hook runs once per event; both
// endpoints get its extra fields; a suppressed event reaches neither and is counted.
func TestEditorRunsOncePerEvent(t *testing.T) {
	a, b := newReceiver(t, nil), newReceiver(t, nil)
	reg := prometheus.NewRegistry()
	ed := &editor{}
	d := startDispatcher(t, Options{Config: testConfig(a.URL, b.URL), Hooks: ed, Registerer: reg, Node: "n1"})
	d.Emit(Event{Type: TypeUserOnline, User: "u1"})
	d.Emit(Event{Type: TypeMessageOffline, Message: &Message{ID: "m1", From: "alice", To: "bob", ChatType: 2, Content: "hi", Seq: 3},
		OfflineUsers: []string{"bob"}})
	d.Emit(Event{Type: TypeUserOffline, User: "u2"})
	st := waitStatus(t, d, "settled", func(s Status) bool { return s.Delivered == 4 && s.Pending == 0 })
	if st.Suppressed != 1 {
		t.Errorf("status %+v: want 1 suppressed", st)
	}
	for _, rc := range []*receiver{a, b} {
		for _, r := range rc.waitN(t, 2) {
			var ev Event
			if err := json.Unmarshal(r.body, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Type == TypeUserOnline || ev.Extra["priority"] != "high" || ev.Extra["user"] != ev.User {
				t.Errorf("delivered %s", r.body)
			}
		}
	}
	ed.mu.Lock()
	seen := ed.seen
	ed.mu.Unlock()
	if len(seen) != 3 {
		t.Fatalf("the hook ran %d times for 3 events and 2 endpoints", len(seen))
	}
	if m := seen[1].Message; seen[1].ID == "" || seen[1].Node != "n1" || seen[1].Time == 0 || m == nil || m.Content != "hi" ||
		m.Seq != 3 || m.ChatType != 2 || seen[1].OfflineUsers[0] != "bob" {
		t.Errorf("the hook saw %+v (message %+v)", seen[1], m)
	}
	if v := counterValue(t, d.m.suppressed[TypeUserOnline]); v != 1 {
		t.Errorf("timgw_webhook_events_suppressed_total{type=user.online} = %v, want 1", v)
	}
}
