// Package app assembles a running gateway from a configuration: transport, session
// registry, authenticator, router, command layer and HTTP API. cmd/timgw is a thin shell
// around it.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/timgw/timgw/core/auth"
	"github.com/timgw/timgw/core/cluster"
	"github.com/timgw/timgw/core/codecplugin"
	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/gateway"
	"github.com/timgw/timgw/core/httpapi"
	"github.com/timgw/timgw/core/lua"
	"github.com/timgw/timgw/core/metrics"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/pluginhost"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/session"
	"github.com/timgw/timgw/core/store"
	"github.com/timgw/timgw/core/transport"
	"github.com/timgw/timgw/core/webhook"
)

// App is a running gateway.
type App struct {
	cfg       *config.Config
	log       *slog.Logger
	reg       *session.Registry
	router    *router.Router
	gw        *gateway.Gateway
	srv       *transport.Server
	api       *httpapi.Server
	codecs    *codecplugin.Manager
	hooks     *lua.Runtime
	storage   *store.Supervisor // nil: persistence off
	trimStop  func()            // stops the idle memory trimmer; nil before it started
	cluster   *cluster.Node     // nil: a single gateway
	dir       Directory         // presence: the registry, or the cluster's view
	lnMu      sync.Mutex
	listeners []*transport.Listener
	httpDone  chan error
	reload    reloadState
	parts     statusParts
	started   time.Time
	metrics   *metrics.Metrics
	level     *slog.LevelVar
	stopOnce  sync.Once
	// membersPage is groups.members_page_size (reloadable).
	membersPage atomic.Int64
	plugins     *pluginhost.Metrics // timgw_plugin_*: every plugin supervisor's
	// webhooks delivers the gateway's events to HTTP endpoints (webhooks.go).
	webhooks *webhook.Dispatcher
	// janitor removes expired messages (retention.go); nil with storage off.
	janitor *store.Janitor
}

// Authenticator builds the authenticator the configuration asks for.
func Authenticator(cfg *config.Config) (gateway.Authenticator, error) {
	switch cfg.Auth.Mode {
	case "open":
		return auth.Open{}, nil
	case "jwt":
		return &auth.JWT{Secret: []byte(cfg.Auth.JWT.Secret), Issuer: cfg.Auth.JWT.Issuer, Audience: cfg.Auth.JWT.Audience}, nil
	}
	return nil, fmt.Errorf("auth.mode %q: unknown", cfg.Auth.Mode)
}

// LoadCertificate reads the configured certificate, or returns nil when TLS is off.
func LoadCertificate(t config.TLS) (*tls.Certificate, error) {
	if !t.Enabled() {
		return nil, nil
	}
	c, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("tls: load %s / %s: %w", t.Cert, t.Key, err)
	}
	return &c, nil
}

// Start builds and starts a gateway.
func Start(cfg *config.Config, log *slog.Logger) (*App, error) {
	authn, err := Authenticator(cfg)
	if err != nil {
		return nil, err
	}
	cert, err := LoadCertificate(cfg.TLS)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, reg: session.New(), httpDone: make(chan error, 1), started: time.Now()}
	a.reload.version = Version(cfg)
	a.metrics = metrics.New(metrics.Sources{
		Connections: func() map[string]int { return a.srv.ConnectionsByProtocol() },
		OnlineUsers: func() int { n, _ := a.reg.Counts(); return n },
		Packets:     func() (uint64, uint64) { st := a.srv.Stats(); return st.PacketsIn.Load(), st.PacketsOut.Load() },
		Bytes:       func() (uint64, uint64) { st := a.srv.Stats(); return st.BytesIn.Load(), st.BytesOut.Load() },
	})
	a.plugins = pluginhost.NewMetrics()
	a.metrics.Registry.MustRegister(a.plugins)
	deliver, storage, err := a.startStorage(cfg)
	if err != nil {
		return nil, err
	}
	a.router = router.New(a.reg, deliver, router.Options{MaxContentBytes: cfg.Limits.MaxContentBytes, Logger: log,
		Presence: a.dir, OpenGroups: router.NewOpenGroups(cfg.Groups.Open),
		Observe: func(code packet.Status, d time.Duration) { a.metrics.ObserveChat(int(code), d) }})
	hooks, err := lua.New(cfg.Hooks, lua.Options{Logger: log, Registerer: a.metrics.Registry, Presence: a.dir})
	if err != nil {
		a.stopBackends()
		return nil, fmt.Errorf("hooks: %w", err)
	}
	a.hooks = hooks
	if err := a.startWebhooks(cfg); err != nil {
		_ = a.hooks.Close()
		a.stopBackends()
		return nil, err
	}
	a.gw = gateway.New(gateway.Options{Registry: a.reg, Router: a.router, Authenticator: authn, Logger: log, Storage: storage, Hooks: hooks, Presence: a.dir,
		NoticeMaxMembers: cfg.Groups.NoticeMaxMembers, Events: a.webhooks, EventGroupMax: cfg.Webhooks.GroupMaxMembers,
		PipelinedChats: cfg.Limits.PipelinedChats})
	a.membersPage.Store(int64(cfg.Groups.MembersPageSize))
	a.srv, err = transport.New(transport.Options{Handler: transportHandler{a.gw}, Limits: cfg.Limits, Runtime: cfg.Runtime, Logger: log})
	if err != nil {
		return nil, err
	}
	a.srv.SetCertificate(cert)
	if sd, ok := deliver.(*store.Deliverer); ok {
		// Stored chats are delivered on the worker pool when large, or always in a
		// cluster (a publish on the bus may wait); small ones on the store's callback.
		sd.SetExecutor(a.srv.Go, !cfg.Cluster.Enabled)
		a.storage.SetResultsWrap(a.srv.Batch) // a batch's acks and deliveries in few writes
	}
	a.metrics.Registry.MustRegister(newRefusalsCollector(a.srv.ConnectionsRefused))
	if err := a.startCodecs(cfg); err != nil {
		a.Shutdown(context.Background())
		return nil, err
	}
	httpapi.SetHertzLogger(log)
	a.api = httpapi.New(apiGateway{gw: a.gw, reg: a.reg, dir: a.dir, stats: a.apiStats,
		pageSize: func() int { return int(a.membersPage.Load()) }}, httpapi.Options{Keys: cfg.API.Keys, SystemUser: cfg.API.SystemUser,
		MaxBodyBytes: cfg.Limits.MaxFrameBytes, Logger: log, Extra: a.adminRoutes(), Degraded: a.degraded,
		BodyTimeout: cfg.Limits.BodyTimeout})
	go func() { a.httpDone <- a.api.Serve(a.srv.HTTPListener()) }()

	if err := a.listen(transport.ModeShared, cfg.Listen); err != nil {
		a.Shutdown(context.Background())
		return nil, err
	}
	for _, l := range cfg.Listeners {
		if err := a.listen(transport.Mode(l.Protocol), l.Address); err != nil {
			a.Shutdown(context.Background())
			return nil, err
		}
	}
	for _, l := range codecListens(cfg) {
		if err := a.listen(l.mode, l.addr); err != nil {
			a.Shutdown(context.Background())
			return nil, err
		}
	}
	a.coreSteps()
	a.startRetention()
	a.startMemTrim(cfg)
	a.addWebhookStep()
	a.AddStatus("hooks", func() any { return a.hooks.Status() })
	if a.storage != nil {
		a.AddStatus("storage", func() any { return a.storage.Status() })
	}
	if a.cluster != nil {
		a.AddStatus("cluster", func() any { return a.cluster.Status() })
	}
	a.AddReloadStep("hooks", StepFunc(func(old, cur *config.Config) (Change, error) {
		// Last step: the scripts reload here, and nothing after it can fail.
		if reflect.DeepEqual(old.Hooks, cur.Hooks) {
			return NoChange, nil
		}
		if err := a.hooks.Reload(cur.Hooks); err != nil {
			return nil, err
		}
		return CommitFunc(func() []string { return []string{"hooks"} }), nil
	}))
	a.record(ReloadResult{Trigger: "startup", Changed: []string{"all"}})
	warnRisks(log, cfg)
	return a, nil
}

// apiStats is the load the HTTP API's /api/v1/stats reports.
func (a *App) apiStats() httpapi.Stats {
	online, byProto := a.reg.Counts()
	return httpapi.Stats{Connections: byProto, OnlineUsers: online}
}

// stopBackends stops the cluster node and the storage plugin (a start that failed).
func (a *App) stopBackends() {
	if a.cluster != nil {
		a.cluster.Stop()
	}
	if a.janitor != nil {
		a.janitor.Stop()
	}
	if a.storage != nil {
		a.storage.Stop()
	}
}

// degraded says why the gateway works only in part, for /health ("": it works fully).
func (a *App) degraded() string {
	if a.cluster != nil && !a.cluster.Connected() {
		return "cluster bus disconnected: serving this node's clients only"
	}
	return ""
}

// startStorage starts the storage plugin when storage is on, reloads the groups and
// users it remembers into the registry, joins the cluster when one is configured, and
// returns the delivery seam (store, then cluster, then local delivery) and the command
// layer's storage (nil when off).
func (a *App) startStorage(cfg *config.Config) (router.Deliverer, gateway.Storage, error) {
	local := &router.Local{Registry: a.reg}
	a.dir = a.reg
	if !cfg.Storage.Enabled() {
		a.log.Warn("storage is off (storage.plugin: none): no offline delivery, history or recall")
		inner, err := a.startCluster(cfg, local)
		return inner, nil, err
	}
	sup, err := store.Start(context.Background(), store.Options{Storage: cfg.Storage, Logger: a.log,
		Registerer: a.metrics.Registry, PluginMetrics: a.plugins})
	if err != nil {
		return nil, nil, err
	}
	svc := store.NewService(sup)
	groups, users, err := svc.Preload(context.Background(), a.reg)
	if err != nil {
		sup.Stop()
		return nil, nil, err
	}
	a.storage = sup
	a.log.Info("storage ready", "plugin", cfg.Storage.Resolved().Plugin, "groups", groups, "users", users)
	if cfg.Cluster.Enabled && !sup.Shared() {
		sup.Stop()
		return nil, nil, fmt.Errorf("cluster: storage plugin %s does not declare its store shared: a cluster needs storage that every node shares (storage.plugin: mongo)", cfg.Storage.Resolved().Plugin)
	}
	inner, err := a.startCluster(cfg, local)
	if err != nil {
		sup.Stop()
		return nil, nil, err
	}
	d := store.NewDeliverer(sup, inner)
	a.AddReloadStep("storage.read_fanout_members", StepFunc(func(old, cur *config.Config) (Change, error) {
		if old.Storage.ReadFanoutMembers == cur.Storage.ReadFanoutMembers {
			return NoChange, nil
		}
		if cur.Storage.ReadFanoutMembers < 0 {
			return nil, fmt.Errorf("storage.read_fanout_members: %d must be >= 0", cur.Storage.ReadFanoutMembers)
		}
		return CommitFunc(func() []string {
			d.SetReadFanoutMembers(cur.Storage.ReadFanoutMembers)
			return []string{"storage.read_fanout_members"}
		}), nil
	}))
	return d, svc, nil
}

// startCluster joins the cluster when one is configured and returns the cluster stage
// around local; without a cluster it returns local.
func (a *App) startCluster(cfg *config.Config, local *router.Local) (router.Deliverer, error) {
	if !cfg.Cluster.Enabled {
		return local, nil
	}
	addr := cfg.Cluster.Advertise
	if addr == "" {
		addr = cfg.Listen
	}
	node, err := cluster.Start(context.Background(), cluster.Options{Config: cfg.Cluster, Registry: a.reg, Local: local,
		Addr: addr, Version: a.reload.version, Logger: a.log})
	if err != nil {
		return nil, err
	}
	a.cluster, a.dir = node, node.View()
	for _, c := range node.Collectors() {
		if err := a.metrics.Registry.Register(c); err != nil {
			node.Stop()
			return nil, fmt.Errorf("cluster metrics: %w", err)
		}
	}
	return node.Wrap(local), nil
}

func (a *App) listen(mode transport.Mode, addr string) error {
	l, err := a.srv.Listen(mode, addr)
	if err != nil {
		return err
	}
	a.lnMu.Lock()
	a.listeners = append(a.listeners, l)
	a.lnMu.Unlock()
	return nil
}

// Addr is the shared port's address.
func (a *App) Addr() net.Addr {
	a.lnMu.Lock()
	defer a.lnMu.Unlock()
	return a.listeners[0].Addr()
}

// currentConfig is the running configuration.
func (a *App) currentConfig() *config.Config {
	a.reload.mu.Lock()
	defer a.reload.mu.Unlock()
	return a.cfg
}

// SetLevelVar lets reloads change the log level of the logger the app was started with.
func (a *App) SetLevelVar(v *slog.LevelVar) { a.level = v }

func sameCert(x, y *tls.Certificate) bool {
	if x == nil || y == nil {
		return x == y
	}
	if len(x.Certificate) != len(y.Certificate) {
		return false
	}
	for i := range x.Certificate {
		if string(x.Certificate[i]) != string(y.Certificate[i]) {
			return false
		}
	}
	return true
}

// goodbyeQuiet is how long a connection must have sent nothing, once told the server is
// going away, before it is closed (shutdown.close_grace bounds the wait): time for the
// chats it sent before it read the notice to arrive and be answered (a round trip).
const goodbyeQuiet = 500 * time.Millisecond

// BeginDrain starts the shutdown's drain: /health answers 503 ("draining") while every
// client is still served. Shutdown follows it.
func (a *App) BeginDrain() {
	if a.api != nil {
		a.api.BeginShutdown()
	}
}

// ShutdownSettings is the running configuration's shutdown section.
func (a *App) ShutdownSettings() config.Shutdown { return a.currentConfig().Shutdown }

// Shutdown stops accepting, tells every connection the server is going away and closes
// it once its chats are answered (within shutdown.close_grace), and stops the HTTP
// server, the event loops, the worker pool, the plugins and storage.
func (a *App) Shutdown(ctx context.Context) error {
	var errs []error
	a.stopOnce.Do(func() {
		// First: plugins that die from now on (a SIGTERM sent to every process of the
		// service) are not restarted.
		if a.codecs != nil {
			a.codecs.Quiesce()
		}
		if a.storage != nil {
			a.storage.Quiesce()
		}
		if a.api != nil {
			a.api.BeginShutdown() // /health says 503 before clients are told to go
		}
		if a.gw != nil {
			a.gw.BeginShutdown() // chats from now on are answered 10034
		}
		if a.srv != nil {
			grace := a.currentConfig().Shutdown.CloseGrace
			errs = append(errs, a.srv.ShutdownWith(ctx, transport.Goodbye{Reason: "server shutting down",
				Notice: gateway.ShutdownNotice(), Quiet: min(goodbyeQuiet, grace), Grace: grace}))
		}
		if a.codecs != nil {
			errs = append(errs, a.codecs.Stop(ctx))
		}
		if a.api != nil {
			errs = append(errs, a.api.Shutdown(ctx))
		}
		// After the connections closed: their user.offline events are queued. Before
		// the hooks: the events still in the channel go through the event hook.
		errs = append(errs, a.stopWebhooks(ctx))
		if a.hooks != nil {
			errs = append(errs, a.hooks.Close())
		}
		if a.trimStop != nil {
			a.trimStop()
		}
		a.stopBackends() // last: nothing routes chats any more
	})
	return errors.Join(errs...)
}
