package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestMetricsExposition(t *testing.T) {
	m := New(Sources{
		Connections: func() map[string]int { return map[string]int{"tcp": 3, "ws": 1} },
		OnlineUsers: func() int { return 2 },
		Packets:     func() (uint64, uint64) { return 10, 20 },
		Bytes:       func() (uint64, uint64) { return 100, 200 },
	})
	m.ObserveChat(10000, time.Millisecond)
	m.ObserveChat(10000, time.Millisecond)
	m.ObserveChat(10027, time.Millisecond)
	m.ObserveChat(20000, time.Millisecond) // outside the cached range
	m.Reloads.WithLabelValues("ok").Inc()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`timgw_connections{protocol="tcp"} 3`, `timgw_connections{protocol="ws"} 1`,
		`timgw_online_users 2`, `timgw_packets_total{direction="in"} 10`, `timgw_bytes_total{direction="out"} 200`,
		`timgw_chats_total{code="10000"} 2`, `timgw_chats_total{code="10027"} 1`, `timgw_chats_total{code="20000"} 1`,
		`timgw_chat_seconds_count 4`, `timgw_config_reloads_total{result="ok"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
