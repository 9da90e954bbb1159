package app

import (
	"runtime"
	"sync"
	"time"

	"github.com/timgw/timgw/core/admin"
	"github.com/timgw/timgw/core/httpapi"
)

// Status is the document /admin/status serves.
type Status struct {
	Now         time.Time        `json:"now"`
	StartedAt   time.Time        `json:"startedAt"`
	Uptime      string           `json:"uptime"`
	Config      ConfigStatus     `json:"config"`
	Listeners   []ListenerStatus `json:"listeners"`
	Connections map[string]int   `json:"connections"`
	OnlineUsers int              `json:"onlineUsers"`
	Traffic     Traffic          `json:"traffic"`
	Runtime     RuntimeStatus    `json:"runtime"`
	// Parts holds the status of optional components (hooks, plugins, storage), by name.
	Parts map[string]any `json:"parts"`
}

// ListenerStatus is one open port.
type ListenerStatus struct {
	Mode    string `json:"mode"`
	Address string `json:"address"`
	TLS     bool   `json:"tls"`
}

// ConfigStatus is the running configuration and its reload history.
type ConfigStatus struct {
	Version string         `json:"version"`
	Reloads []ReloadResult `json:"reloads"`
}

// Traffic counts what went through the transport.
type Traffic struct {
	PacketsIn  uint64 `json:"packetsIn"`
	PacketsOut uint64 `json:"packetsOut"`
	BytesIn    uint64 `json:"bytesIn"`
	BytesOut   uint64 `json:"bytesOut"`
}

// RuntimeStatus is the Go runtime's view.
type RuntimeStatus struct {
	Goroutines int    `json:"goroutines"`
	HeapBytes  uint64 `json:"heapBytes"`
	SysBytes   uint64 `json:"sysBytes"`
	NumGC      uint32 `json:"numGC"`
}

type statusParts struct {
	mu    sync.Mutex
	parts map[string]func() any
}

// AddStatus adds a component's status to /admin/status under name.
func (a *App) AddStatus(name string, f func() any) {
	a.parts.mu.Lock()
	defer a.parts.mu.Unlock()
	if a.parts.parts == nil {
		a.parts.parts = make(map[string]func() any)
	}
	a.parts.parts[name] = f
}

// Status reports what the gateway is doing.
func (a *App) Status() Status {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	online, _ := a.reg.Counts()
	st := a.srv.Stats()
	s := Status{
		Now:         time.Now(),
		StartedAt:   a.started,
		Listeners:   a.listenerStatus(),
		Uptime:      time.Since(a.started).Round(time.Second).String(),
		Config:      ConfigStatus{Version: a.ConfigVersion(), Reloads: a.ReloadHistory()},
		Connections: a.srv.ConnectionsByProtocol(),
		OnlineUsers: online,
		Traffic: Traffic{PacketsIn: st.PacketsIn.Load(), PacketsOut: st.PacketsOut.Load(),
			BytesIn: st.BytesIn.Load(), BytesOut: st.BytesOut.Load()},
		Runtime: RuntimeStatus{Goroutines: runtime.NumGoroutine(), HeapBytes: ms.HeapAlloc, SysBytes: ms.Sys, NumGC: ms.NumGC},
		Parts:   map[string]any{},
	}
	a.parts.mu.Lock()
	fs := make(map[string]func() any, len(a.parts.parts))
	for k, f := range a.parts.parts {
		fs[k] = f
	}
	a.parts.mu.Unlock()
	for k, f := range fs {
		s.Parts[k] = f()
	}
	return s
}

func (a *App) listenerStatus() []ListenerStatus {
	a.lnMu.Lock()
	defer a.lnMu.Unlock()
	out := make([]ListenerStatus, 0, len(a.listeners))
	for _, l := range a.listeners {
		mode := string(l.Mode())
		tls := mode == "tls" || (mode == "shared" && a.srv.TLSEnabled())
		out = append(out, ListenerStatus{Mode: mode, Address: l.Addr().String(), TLS: tls})
	}
	return out
}

// adminRoutes mounts the admin endpoints and pages on the HTTP API.
func (a *App) adminRoutes() []httpapi.Route {
	h := admin.Handler(admin.Options{
		Keys:   func() []string { return a.currentConfig().Admin.Keys },
		Status: func() any { return a.Status() },
		Reload: func() (any, bool) {
			r := a.ReloadFromSource("api")
			return r, r.Error == ""
		},
		Metrics:       a.metrics.Handler(),
		RestartPlugin: a.restartPlugin,
		EraseUser:     a.eraseUser,
	})
	routes := make([]httpapi.Route, 0, len(admin.Paths))
	for _, p := range admin.Paths {
		routes = append(routes, httpapi.Route{Method: p.Method, Path: p.Path, Handler: h})
	}
	return routes
}
