package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// wait bounds every wait for something the gateway must do (an answer, a delivery, a
// close). It is generous because the gateway runs with the race detector on busy cores;
// it is never a performance target.
const wait = 10 * time.Second

// testAPIKey is the API key of the generated configurations.
const testAPIKey = "integration-test-key"

var (
	// binPath is the gateway binary under test, built by TestMain.
	binPath string
	// workDir is the temporary directory of this test run.
	workDir string
	// certs is the self-signed certificate of this test run.
	certs *testCert
	// moduleRoot is the absolute path of the repository (the parent of integration/).
	moduleRoot string
)

// TestMain builds the gateway once with the race detector, runs the tests, and stops
// the gateways shared between tests.
func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	flag.Parse()
	// The tests mostly wait on the gateway: run more of them at once than there are
	// CPUs, unless -parallel was given.
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", "8")
	}

	var err error
	if moduleRoot, err = filepath.Abs(".."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	workDir, err = os.MkdirTemp("", "timgw-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)

	binPath = os.Getenv("TIMGW_BIN")
	if binPath != "" {
		if binPath, err = filepath.Abs(binPath); err != nil {
			fmt.Fprintln(os.Stderr, "integration: TIMGW_BIN:", err)
			return 1
		}
	} else {
		binPath = filepath.Join(workDir, "timgw")
		build := exec.Command("go", "build", "-race", "-o", binPath, "./cmd/timgw")
		build.Dir = moduleRoot
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "integration: go build -race ./cmd/timgw failed: %v\n%s", err, out)
			return 1
		}
	}
	if certs, err = writeCert(workDir); err != nil {
		fmt.Fprintln(os.Stderr, "integration: certificate:", err)
		return 1
	}

	code := m.Run()
	if err := stopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		code = 1
	}
	return code
}

// ---- certificates ----

// testCert is a self-signed certificate for 127.0.0.1 and localhost, in PEM files.
type testCert struct {
	CertFile, KeyFile string
	Pool              *x509.CertPool
}

// TLSConfig returns a client configuration that trusts the test certificate.
func (c *testCert) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: c.Pool, MinVersion: tls.VersionTLS12}
}

// writeCert generates a self-signed ECDSA certificate into dir.
func writeCert(dir string) (*testCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "timgw integration test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	c := &testCert{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	if err := os.WriteFile(c.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c.Pool = x509.NewCertPool()
	c.Pool.AddCert(cert)
	return c, nil
}

// ---- gateway processes ----

// gwConfig describes the configuration file a gateway is started with. Zero fields take
// the test defaults noted on them.
type gwConfig struct {
	// File, when set, is used as the configuration as it is (the others are ignored). A
	// relative path is taken from the module root (conf/timgw.yaml).
	File string
	// Auth is "open" (default) or "jwt".
	Auth string
	// JWTSecret is the HS256 secret in jwt mode.
	JWTSecret string
	// TLS configures the test certificate.
	TLS bool
	// Listeners are protocols given a dedicated port each (tcp, ws, http, tls).
	Listeners []string
	// MaxFrameBytes is limits.max_frame_bytes (default 8192).
	MaxFrameBytes int
	// MaxContentBytes is limits.max_content_bytes (default 1024).
	MaxContentBytes int
	// IdleTimeout is limits.idle_timeout (default 5m).
	IdleTimeout time.Duration
	// Drain is shutdown.drain (default 0: off, so that stopping a test gateway does not
	// wait for it).
	Drain time.Duration
	// NoHooks turns the Lua hooks off (hooks.enabled: false): no moderation rate limit.
	NoHooks bool
	// Env are NAME=value variables added to the gateway's environment (which otherwise
	// has no TIMGW_* variables).
	Env []string
	// BodyTimeout is limits.body_timeout (default: the shipped default).
	BodyTimeout time.Duration
	// FrameTimeout is limits.frame_timeout (default: the shipped default).
	FrameTimeout time.Duration
}

// Test defaults of gwConfig.
const (
	defMaxFrame   = 8192
	defMaxContent = 1024
)

// render writes the YAML configuration, with the dedicated listeners at the given
// addresses.
func (c gwConfig) render(listen string, listeners map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\n", listen)
	b.WriteString("listeners:")
	if len(c.Listeners) == 0 {
		b.WriteString(" []")
	}
	b.WriteString("\n")
	for _, p := range c.Listeners {
		fmt.Fprintf(&b, "  - protocol: %s\n    address: %q\n", p, listeners[p])
	}
	if c.TLS {
		fmt.Fprintf(&b, "tls:\n  cert: %q\n  key: %q\n", certs.CertFile, certs.KeyFile)
	}
	mode := c.Auth
	if mode == "" {
		mode = "open"
	}
	fmt.Fprintf(&b, "auth:\n  mode: %s\n", mode)
	if c.JWTSecret != "" {
		fmt.Fprintf(&b, "  jwt:\n    secret: %q\n", c.JWTSecret)
	}
	fmt.Fprintf(&b, "api:\n  keys: [%q]\n", testAPIKey)
	frame, content, idle := c.MaxFrameBytes, c.MaxContentBytes, c.IdleTimeout
	if frame == 0 {
		frame = defMaxFrame
	}
	if content == 0 {
		content = defMaxContent
	}
	if idle == 0 {
		idle = 5 * time.Minute
	}
	fmt.Fprintf(&b, "limits:\n  max_frame_bytes: %d\n  max_content_bytes: %d\n  idle_timeout: %s\n",
		frame, content, idle)
	if c.BodyTimeout > 0 {
		fmt.Fprintf(&b, "  body_timeout: %s\n", c.BodyTimeout)
	}
	if c.FrameTimeout > 0 {
		fmt.Fprintf(&b, "  frame_timeout: %s\n", c.FrameTimeout)
	}
	b.WriteString("log:\n  level: debug\n")
	fmt.Fprintf(&b, "shutdown:\n  drain: %s\n", c.Drain)
	if c.NoHooks {
		b.WriteString("hooks:\n  enabled: false\n")
	}
	// Storage is on by default (bolt in ./data): each gateway gets a directory of its own.
	fmt.Fprintf(&b, "storage:\n  dir: %q\n", filepath.Join(workDir, "data-"+strings.ReplaceAll(listen, ":", "-")))
	return b.String()
}

// gateway is a running timgw process.
type gateway struct {
	name string
	// Addr is the shared port, host:port.
	Addr string
	// Listeners maps a protocol to its dedicated port, host:port.
	Listeners map[string]string
	// Config is the configuration it was started with.
	Config gwConfig

	cmd     *exec.Cmd
	log     *logBuffer
	exited  chan struct{}
	waitErr error // set before exited is closed
	stopped atomic.Bool
}

// logBuffer collects the gateway's stdout and stderr.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// Len returns how many bytes were written so far.
func (l *logBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Len()
}

// From returns what was written from offset off on.
func (l *logBuffer) From(off int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf.Bytes()
	if off > len(b) {
		off = len(b)
	}
	return string(b[off:])
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startGateway starts the binary with cfg on free ports and waits until it logged that
// it is ready, the shared port accepts connections, GET /health answers 200 and every
// dedicated port accepts. A port taken between freeAddr and the gateway's bind (by
// another test's gateway) is retried on new ports.
func startGateway(name string, cfg gwConfig) (*gateway, error) {
	for attempt := 1; ; attempt++ {
		g, err := startGatewayOnce(name, cfg)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return g, err
		}
	}
}

func startGatewayOnce(name string, cfg gwConfig) (*gateway, error) {
	g := &gateway{name: name, Config: cfg, Listeners: map[string]string{}, log: &logBuffer{}, exited: make(chan struct{})}
	var err error
	if g.Addr, err = freeAddr(); err != nil {
		return nil, err
	}
	// Each gateway runs in a directory of its own: relative paths of its configuration
	// (the default storage directory ./data) must not collide or land in the repository.
	dir, err := os.MkdirTemp(workDir, name+"-")
	if err != nil {
		return nil, err
	}
	file := cfg.File
	if file == "" {
		for _, p := range cfg.Listeners {
			if g.Listeners[p], err = freeAddr(); err != nil {
				return nil, err
			}
		}
		file = filepath.Join(dir, "timgw.yaml")
		if err := os.WriteFile(file, []byte(cfg.render(g.Addr, g.Listeners)), 0o600); err != nil {
			return nil, err
		}
	} else if !filepath.IsAbs(file) {
		file = filepath.Join(moduleRoot, file)
	}
	g.cmd = exec.Command(binPath, "-config", file, "-listen", g.Addr)
	g.cmd.Dir = dir
	g.cmd.Stdout = g.log
	g.cmd.Stderr = g.log
	g.cmd.Env = append(gatewayEnv(), cfg.Env...)
	setPdeathsig(g.cmd)
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start gateway %s: %w", name, err)
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		close(g.exited)
	}()
	if err := g.waitReady(60 * time.Second); err != nil {
		_ = g.stop()
		return nil, fmt.Errorf("gateway %s (config %s) not ready: %w\n--- gateway log ---\n%s", name, file, err, g.log.From(0))
	}
	return g, nil
}

// gatewayEnv is the environment of a gateway: ours without TIMGW_* variables, so that the
// shipped configuration takes its documented defaults.
func gatewayEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TIMGW_") {
			env = append(env, kv)
		}
	}
	return env
}

func (g *gateway) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	api := timclient.NewAPI("http://"+g.Addr, "", nil)
	api.Client.Timeout = time.Second
	defer api.CloseIdle()
	addrs := []string{g.Addr}
	for _, a := range g.Listeners {
		addrs = append(addrs, a)
	}
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-g.exited:
			return fmt.Errorf("gateway exited: %v", g.waitErr)
		default:
		}
		last = nil
		for _, a := range addrs {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				last = err
				break
			}
			c.Close()
		}
		if last == nil && !strings.Contains(g.log.From(0), "timgw ready") {
			// Something answers on our ports, but not this process (yet): it may be
			// another gateway that took a port freeAddr had handed out.
			last = errors.New("the gateway has not logged \"timgw ready\"")
		}
		if last == nil {
			r, err := api.Get("/health")
			switch {
			case err != nil:
				last = err
			case r.Status != http.StatusOK:
				last = fmt.Errorf("GET /health: %s", r)
			default:
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("timed out after %v: %v", timeout, last)
}

// stop sends SIGTERM twice (the second ends a configured shutdown.drain at once: the
// gateways of configuration files that leave it out drain 5 s otherwise) and waits for
// the process to exit (SIGKILL after 15 s). It reports a process that had to be killed,
// and race detector reports or panics in the log.
func (g *gateway) stop() error { return g.signalStop(15*time.Second, syscall.SIGTERM, syscall.SIGTERM) }

// terminate stops the gateway as an orchestrator does, with one SIGTERM (a configured
// drain runs its course), and otherwise like stop, waiting up to 30 s for the exit.
func (g *gateway) terminate() error { return g.signalStop(30*time.Second, syscall.SIGTERM) }

func (g *gateway) signalStop(timeout time.Duration, sigs ...os.Signal) error {
	if !g.stopped.CompareAndSwap(false, true) {
		return nil
	}
	var errs []error
	select {
	case <-g.exited:
		errs = append(errs, fmt.Errorf("gateway %s had exited before it was stopped: %v", g.name, g.waitErr))
	default:
		for _, sig := range sigs {
			_ = g.cmd.Process.Signal(sig)
		}
		select {
		case <-g.exited:
		case <-time.After(timeout):
			_ = g.cmd.Process.Kill()
			<-g.exited
			errs = append(errs, fmt.Errorf("gateway %s did not exit within %v of %v; killed", g.name, timeout, sigs))
		}
	}
	if msg := logProblems(g.log.From(0)); msg != "" {
		errs = append(errs, fmt.Errorf("gateway %s: %s", g.name, msg))
	}
	return errors.Join(errs...)
}

// kill ends the process with SIGKILL (a crash: no goodbye, nothing flushed) and waits
// for it to exit. Like stop, it reports race detector reports and panics in the log.
func (g *gateway) kill() error {
	if !g.stopped.CompareAndSwap(false, true) {
		return nil
	}
	_ = g.cmd.Process.Kill()
	<-g.exited
	if msg := logProblems(g.log.From(0)); msg != "" {
		return fmt.Errorf("gateway %s: %s", g.name, msg)
	}
	return nil
}

// logProblems returns what in a gateway log must fail the tests: race detector reports
// and panics.
func logProblems(log string) string {
	var p []string
	if strings.Contains(log, "WARNING: DATA RACE") {
		p = append(p, "the race detector reported a data race")
	}
	if strings.Contains(log, "panic:") {
		p = append(p, "the log shows a panic")
	}
	if len(p) == 0 {
		return ""
	}
	return strings.Join(p, "; ") + "; log excerpt:\n" + excerpt(log, "WARNING: DATA RACE", "panic:")
}

// excerpt returns up to 8 KiB of log from the first of the markers found.
func excerpt(log string, markers ...string) string {
	for _, m := range markers {
		if i := strings.Index(log, m); i >= 0 {
			return log[i:min(len(log), i+8<<10)]
		}
	}
	return ""
}

// attach ties t to g: when t fails, the gateway log written while t ran is printed, and
// an exit of the gateway during t fails it. Data races and panics are reported once, when
// the gateway is stopped (they cannot be pinned on the test running at the time).
func (g *gateway) attach(t *testing.T) {
	t.Helper()
	off := g.log.Len()
	t.Cleanup(func() {
		if !g.stopped.Load() {
			select {
			case <-g.exited:
				t.Errorf("gateway %s exited during the test: %v", g.name, g.waitErr)
			default:
			}
		}
		if t.Failed() {
			seg := g.log.From(off)
			const max = 16 << 10
			if len(seg) > max {
				seg = "...\n" + seg[len(seg)-max:]
			}
			t.Logf("gateway %s log while this test ran (a shared gateway also logs other tests):\n%s", g.name, seg)
		}
	})
}

// startTestGateway starts a gateway for t alone, stopped when t ends.
func startTestGateway(t *testing.T, name string, cfg gwConfig) *gateway {
	t.Helper()
	g, err := startGateway(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.attach(t)
	t.Cleanup(func() {
		if err := g.stop(); err != nil {
			t.Error(err)
		}
	})
	return g
}

// sharedGW is a gateway started on first use and stopped by TestMain.
type sharedGW struct {
	once sync.Once
	cfg  gwConfig
	gw   *gateway
	err  error
}

var (
	sharedMu  sync.Mutex
	sharedGWs = map[string]*sharedGW{}
)

// sharedGateway returns the gateway called name, starting it with cfg on first use.
// Tests sharing it must use user and group ids of their own (uid).
func sharedGateway(t *testing.T, name string, cfg gwConfig) *gateway {
	t.Helper()
	sharedMu.Lock()
	s := sharedGWs[name]
	if s == nil {
		s = &sharedGW{cfg: cfg}
		sharedGWs[name] = s
	}
	sharedMu.Unlock()
	s.once.Do(func() { s.gw, s.err = startGateway(name, s.cfg) })
	if s.err != nil {
		t.Fatal(s.err)
	}
	s.gw.attach(t)
	return s.gw
}

// stopShared stops the shared gateways, reporting races, panics and unclean stops.
func stopShared() error {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	var errs []error
	for _, s := range sharedGWs {
		if s.gw != nil {
			errs = append(errs, s.gw.stop())
		}
	}
	return errors.Join(errs...)
}

// The shared gateways.

// mainGateway is the open-mode gateway with TLS on the shared port and the test limits.
func mainGateway(t *testing.T) *gateway {
	t.Helper()
	return sharedGateway(t, "main", gwConfig{TLS: true})
}

// jwtSecret is the HS256 secret of jwtGateway.
const jwtSecret = "integration-jwt-secret"

// jwtIdle is the idle timeout of jwtGateway.
const jwtIdle = 2 * time.Second

// jwtGateway is the gateway in jwt mode; it also has a short idle timeout.
func jwtGateway(t *testing.T) *gateway {
	t.Helper()
	return sharedGateway(t, "jwt", gwConfig{Auth: "jwt", JWTSecret: jwtSecret, IdleTimeout: jwtIdle})
}

// ---- endpoints and clients ----

// endpoint names a way to reach the gateway.
type endpoint string

// Endpoints. The socket ones can log in and receive; http and https only send.
const (
	epTCP   endpoint = "tcp"   // t-im TCP
	epTLS   endpoint = "tls"   // t-im TCP over TLS
	epWS    endpoint = "ws"    // WebSocket
	epWSS   endpoint = "wss"   // WebSocket over TLS
	epHTTP  endpoint = "http"  // HTTP API
	epHTTPS endpoint = "https" // HTTP API over TLS
)

// url returns the URL of ep at addr, with pathQuery (WebSocket and HTTP only).
func (ep endpoint) url(addr, pathQuery string) string {
	return string(ep) + "://" + addr + pathQuery
}

// dialURL connects to a timclient URL, trusting the test certificate; the connection is
// closed when t ends.
func dialURL(t *testing.T, url string) *timclient.Conn {
	t.Helper()
	c, err := timclient.Dial(url, &timclient.Options{TLSConfig: certs.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialRaw opens a plain TCP connection to addr, closed when t ends: for clients that
// write bytes no timclient would.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// dial connects to the shared port with ep.
func (g *gateway) dial(t *testing.T, ep endpoint) *timclient.Conn {
	t.Helper()
	path := ""
	if ep == epWS || ep == epWSS {
		path = "/"
	}
	return dialURL(t, ep.url(g.Addr, path))
}

// login connects to the shared port with ep and logs in as user (cmd 5, password "x").
func (g *gateway) login(t *testing.T, ep endpoint, user string) *timclient.Conn {
	t.Helper()
	c := g.dial(t, ep)
	mustLogin(t, c, user)
	return c
}

// mustLogin logs c in as user with password "x".
func mustLogin(t *testing.T, c *timclient.Conn, user string) {
	t.Helper()
	if _, err := c.Login(user, "x", wait); err != nil {
		t.Fatalf("login %s over %s: %v", user, c.Proto(), err)
	}
}

// api returns an HTTP API client of the shared port (ep http or https) with the test
// key.
func (g *gateway) api(t *testing.T, ep endpoint) *timclient.API {
	t.Helper()
	a := timclient.NewAPI(string(ep)+"://"+g.Addr, testAPIKey, certs.TLSConfig())
	t.Cleanup(a.CloseIdle)
	return a
}

var idSeq atomic.Int64

// uid returns an id unique in this test run, starting with prefix.
func uid(prefix string) string {
	return prefix + "-" + strconv.FormatInt(idSeq.Add(1), 10)
}

// ---- assertions ----

// mustCode fails t unless r has code want. err is the error of the request that
// returned r.
func mustCode(t *testing.T, what string, r *timclient.Response, err error, want packet.Status) {
	t.Helper()
	var se *timclient.StatusError
	if errors.As(err, &se) {
		err = nil
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r.Code != want {
		t.Fatalf("%s: code %d (%q), want %d", what, r.Code, r.Msg, want)
	}
}

// mustRecvChat waits for a chat message on c.
func mustRecvChat(t *testing.T, c *timclient.Conn, who string) *packet.Chat {
	t.Helper()
	m, err := c.ExpectChat(wait)
	if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	return m
}

// mustSync runs a heartbeat round trip on c (proving it is still open) and returns
// the packets that arrived before the answer.
func mustSync(t *testing.T, c *timclient.Conn, who string) []packet.Packet {
	t.Helper()
	got, err := c.Sync(wait)
	if err != nil {
		t.Fatalf("%s: connection not usable: %v", who, err)
	}
	return got
}

// mustNotGet fails t when c received a packet of cmd, checked with a heartbeat barrier
// (everything the server queued to c before answering the heartbeat is seen).
func mustNotGet(t *testing.T, c *timclient.Conn, cmd packet.Cmd, who string) {
	t.Helper()
	for _, p := range mustSync(t, c, who) {
		if p.Cmd == cmd {
			t.Errorf("%s received cmd %d, want none: %s", who, cmd, p.Body)
		}
	}
}

// ackData is the data of a cmd 12 answer.
type ackData struct {
	ID         packet.Str `json:"id"`
	CreateTime packet.Int `json:"createTime"`
}

// mustAccepted checks a cmd 12 answer with code 10000 and returns its data.
func mustAccepted(t *testing.T, r *timclient.Response, err error) ackData {
	t.Helper()
	mustCode(t, "chat answer", r, err, packet.StatusOK)
	var d ackData
	if err := r.DataInto(&d); err != nil {
		t.Fatalf("chat answer: %v", err)
	}
	if d.ID == "" || d.CreateTime <= 0 {
		t.Fatalf("chat answer data %s: want id and createTime", r.Data)
	}
	return d
}

// makeToken returns an HS256 JWT with sub and exp signed with secret.
func makeToken(t *testing.T, secret, sub string, exp time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": exp.Unix()}).
		SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jsonString renders v compactly for messages.
func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// jsonUnmarshal is json.Unmarshal that reports an absent member as an error.
func jsonUnmarshal(b []byte, v any) error {
	if len(b) == 0 {
		return errors.New("member absent")
	}
	return json.Unmarshal(b, v)
}
