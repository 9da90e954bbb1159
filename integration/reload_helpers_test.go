package integration

// Helpers of the configuration reload tests (reload_test.go) and the reload benchmark
// (reload_bench_test.go): a configuration file that a test edits under a running gateway,
// a client of the admin endpoints (/admin/status, /admin/reload, /metrics), certificates
// to rotate, and a fleet of logged-in clients that must survive every reload.

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// reloadAdminKey is the admin key of the reload tests' gateways.
const reloadAdminKey = "reload-test-admin-key"

// ---- the configuration file ----

// writeMode is how a test writes a file the gateway watches.
type writeMode int

const (
	// byRename writes a temporary file next to the target and renames it over the
	// target, as most editors and configuration managers do: the directory watcher sees
	// a CREATE of the file's name and no WRITE.
	byRename writeMode = iota
	// inPlace truncates the file and writes it again, as `cat > file` does.
	inPlace
)

func (m writeMode) String() string {
	if m == inPlace {
		return "in-place write"
	}
	return "write to a temporary file and rename"
}

// writeFileAs writes content to path in the given way.
func writeFileAs(t *testing.T, path string, content []byte, how writeMode) {
	t.Helper()
	if how == inPlace {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".swp")
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// liveConfig is the configuration file of a gateway, edited by a test while the gateway
// runs. It keeps the YAML as a document, so that an edit changes one key.
type liveConfig struct {
	// Path is the file given to the gateway with -config.
	Path string
	// Dir is the file's directory (the one the gateway watches); it also holds the
	// test's certificates and the storage directory.
	Dir string
	doc map[string]any
}

// newLiveConfig writes the test defaults of base (gwConfig.render) into a new directory,
// with the admin key reloadAdminKey, a storage directory of its own, and the moderation
// script's rate and flood limits off (the nothing-drops checks send many chats per user;
// the word filter stays). Start the gateway with gwConfig{File: c.Path}.
func newLiveConfig(t *testing.T, name string, base gwConfig) *liveConfig {
	t.Helper()
	dir, err := os.MkdirTemp(workDir, name+"-conf-")
	if err != nil {
		t.Fatal(err)
	}
	// The file's listen address does not matter: the harness's -listen overrides it.
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(base.render("127.0.0.1:0", nil)), &doc); err != nil {
		t.Fatalf("the rendered test configuration is not YAML: %v", err)
	}
	c := &liveConfig{Path: filepath.Join(dir, "timgw.yaml"), Dir: dir, doc: doc}
	c.Set("admin.keys", []any{reloadAdminKey})
	c.Set("storage.dir", filepath.Join(dir, "data"))
	c.Set("hooks.vars.moderation", map[string]any{
		"action": "mask", "words": []any{"badword"}, "whole_words": true, "rate_limit": 0, "flood_max": 0,
	})
	c.Write(t, byRename)
	return c
}

// Set sets the key at a dotted path ("limits.max_content_bytes"), creating the
// sections on the way.
func (c *liveConfig) Set(path string, v any) {
	m := c.doc
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		sub, ok := m[k].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[k] = sub
		}
		m = sub
	}
	m[keys[len(keys)-1]] = v
}

// Clone returns a copy whose edits do not change c (for edits that must be refused).
func (c *liveConfig) Clone(t *testing.T) *liveConfig {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(c.Render(t)), &doc); err != nil {
		t.Fatal(err)
	}
	return &liveConfig{Path: c.Path, Dir: c.Dir, doc: doc}
}

// Render returns the document as YAML.
func (c *liveConfig) Render(t *testing.T) string {
	t.Helper()
	b, err := yaml.Marshal(c.doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Write writes the document to the file.
func (c *liveConfig) Write(t *testing.T, how writeMode) {
	t.Helper()
	writeFileAs(t, c.Path, []byte(c.Render(t)), how)
}

// ApplyByWatcher writes the document and waits until the gateway's directory watcher
// has applied it (a history entry with trigger "file" that changed something). A
// refusal fails t.
func (c *liveConfig) ApplyByWatcher(t *testing.T, adm *adminClient, how writeMode) reloadResult {
	t.Helper()
	mark := time.Now()
	c.Write(t, how)
	r := adm.waitReload(t, mark, "the directory watcher applies the edit ("+how.String()+")", func(r reloadResult) bool {
		return r.Trigger == "file" && (r.Error != "" || !r.Skipped)
	})
	if r.Error != "" {
		t.Fatalf("the gateway refused the edit (%s): %s", how, r.Error)
	}
	return r
}

// ApplyByAPI writes the document, applies it with POST /admin/reload and returns the
// result of the reload that applied it. It then waits for the watcher's own reload of
// the same edit (which finds nothing new), so that it does not fall into the next edit.
func (c *liveConfig) ApplyByAPI(t *testing.T, adm *adminClient, how writeMode) reloadResult {
	t.Helper()
	mark := time.Now()
	c.Write(t, how)
	r := adm.mustReload(t, http.StatusOK)
	if r.Skipped { // the watcher was quicker
		r = adm.waitReload(t, mark, "the edit is applied", func(r reloadResult) bool { return r.Error == "" && !r.Skipped })
	}
	adm.waitReload(t, mark, "the directory watcher reloads too", func(r reloadResult) bool { return r.Trigger == "file" })
	return r
}

// ---- the admin endpoints ----

// reloadResult is a reload attempt as POST /admin/reload answers it and as
// /admin/status lists it in config.reloads.
type reloadResult struct {
	Version    string    `json:"version"`
	Time       time.Time `json:"time"`
	Trigger    string    `json:"trigger"`
	Changed    []string  `json:"changed"`
	Restart    []string  `json:"restart"`
	Skipped    bool      `json:"skipped"`
	Error      string    `json:"error"`
	DurationNs int64     `json:"durationNs"`
}

func (r reloadResult) String() string { return jsonString(r) }

// hasChange reports whether r changed an item starting with prefix.
func (r reloadResult) hasChange(prefix string) bool {
	return slices.ContainsFunc(r.Changed, func(c string) bool { return strings.HasPrefix(c, prefix) })
}

// gwStatus is the part of /admin/status the tests read.
type gwStatus struct {
	Config struct {
		Version string         `json:"version"`
		Reloads []reloadResult `json:"reloads"`
	} `json:"config"`
	Connections map[string]int `json:"connections"`
	OnlineUsers int            `json:"onlineUsers"`
}

// adminClient calls the admin endpoints of a gateway with an admin key.
type adminClient struct {
	api *timclient.API
	// Key is sent as X-Admin-Key.
	Key string
}

func newAdminClient(t *testing.T, g *gateway) *adminClient {
	a := timclient.NewAPI("http://"+g.Addr, "", nil)
	t.Cleanup(a.CloseIdle)
	return &adminClient{api: a, Key: reloadAdminKey}
}

// do sends a request with the admin key.
func (a *adminClient) do(method, path string) (*timclient.APIResult, error) {
	return a.api.Do(method, path, nil, "X-Admin-Key", a.Key)
}

// reload posts /admin/reload and returns the HTTP status and the result.
func (a *adminClient) reload(t *testing.T) (int, reloadResult) {
	t.Helper()
	r, err := a.do(http.MethodPost, "/admin/reload")
	if err != nil {
		t.Fatalf("POST /admin/reload: %v", err)
	}
	var res reloadResult
	if err := json.Unmarshal(r.Body, &res); err != nil {
		t.Fatalf("POST /admin/reload: %v in %s", err, r)
	}
	return r.Status, res
}

// mustReload is reload that requires HTTP status want.
func (a *adminClient) mustReload(t *testing.T, want int) reloadResult {
	t.Helper()
	code, res := a.reload(t)
	if code != want {
		t.Fatalf("POST /admin/reload: HTTP %d %s, want HTTP %d", code, res, want)
	}
	return res
}

// getStatus fetches /admin/status.
func (a *adminClient) getStatus() (gwStatus, error) {
	var st gwStatus
	r, err := a.do(http.MethodGet, "/admin/status")
	if err != nil {
		return st, fmt.Errorf("GET /admin/status: %w", err)
	}
	if r.Status != http.StatusOK {
		return st, fmt.Errorf("GET /admin/status: %s", r)
	}
	if err := json.Unmarshal(r.Body, &st); err != nil {
		return st, fmt.Errorf("GET /admin/status: %w in %s", err, r)
	}
	return st, nil
}

// status is getStatus that fails t on error.
func (a *adminClient) status(t *testing.T) gwStatus {
	t.Helper()
	st, err := a.getStatus()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitReload polls /admin/status until config.reloads has an entry after since that
// matches, and returns it.
func (a *adminClient) waitReload(t *testing.T, since time.Time, what string, match func(reloadResult) bool) reloadResult {
	t.Helper()
	var found reloadResult
	eventually(t, "reload history: "+what, func() error {
		st, err := a.getStatus()
		if err != nil {
			return err
		}
		for _, r := range st.Config.Reloads {
			if r.Time.After(since) && match(r) {
				found = r
				return nil
			}
		}
		return fmt.Errorf("no such entry yet; entries since the edit: %s", reloadsSince(st.Config.Reloads, since))
	})
	return found
}

// reloadsSince renders the history entries after since.
func reloadsSince(rs []reloadResult, since time.Time) string {
	var out []string
	for _, r := range rs {
		if r.Time.After(since) {
			out = append(out, r.String())
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// metrics fetches /metrics and returns each sample by its series, e.g.
// `timgw_connections{protocol="tcp"}`.
func (a *adminClient) metrics() (map[string]float64, error) {
	r, err := a.do(http.MethodGet, "/metrics")
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", r)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(r.Body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("GET /metrics: bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("GET /metrics: bad line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out, nil
}

// ---- certificates ----

// rotCert is a self-signed certificate for 127.0.0.1 and localhost (writeCert), kept in
// memory to be installed under any file names.
type rotCert struct {
	Cert, Key []byte
	X509      *x509.Certificate
}

// Serial is the certificate's serial number.
func (c rotCert) Serial() *big.Int { return c.X509.SerialNumber }

// newRotCert generates a certificate (its files land in dir).
func newRotCert(t *testing.T, dir string) rotCert {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	tc, err := writeCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	var c rotCert
	if c.Cert, err = os.ReadFile(tc.CertFile); err != nil {
		t.Fatal(err)
	}
	if c.Key, err = os.ReadFile(tc.KeyFile); err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(c.Cert)
	if blk == nil {
		t.Fatalf("%s: no PEM block", tc.CertFile)
	}
	if c.X509, err = x509.ParseCertificate(blk.Bytes); err != nil {
		t.Fatal(err)
	}
	return c
}

// install writes the key and the certificate to the given files, each replaced in one
// rename (the gateway reads them at the next reload).
func (c rotCert) install(t *testing.T, certFile, keyFile string) {
	t.Helper()
	writeFileAs(t, keyFile, c.Key, byRename)
	writeFileAs(t, certFile, c.Cert, byRename)
}

// trusting returns a client TLS configuration that trusts the given certificates.
func trusting(cs ...rotCert) *tls.Config {
	pool := x509.NewCertPool()
	for _, c := range cs {
		pool.AddCert(c.X509)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// peerSerial is the serial number of the certificate the server showed on c (a TLS
// connection).
func peerSerial(c *timclient.Conn) (*big.Int, error) {
	tc, ok := c.NetConn().(*tls.Conn)
	if !ok {
		return nil, fmt.Errorf("%T is not a TLS connection", c.NetConn())
	}
	cs := tc.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return nil, fmt.Errorf("no peer certificate")
	}
	return cs.PeerCertificates[0].SerialNumber, nil
}

// ---- clients that must survive ----

// fleetMember is one logged-in client of a fleet.
type fleetMember struct {
	Name string // what it is, for messages ("tcp", "wss", "tcp on the added port")
	User string
	C    *timclient.Conn
}

// fleet is a set of logged-in clients, kept connected across reloads.
type fleet struct {
	members []*fleetMember
	rounds  int
}

// dialWith connects to a timclient URL with opts; the connection is closed when t ends.
func dialWith(t *testing.T, url string, opts *timclient.Options) *timclient.Conn {
	t.Helper()
	c, err := timclient.Dial(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// epURL is the URL of ep on addr (path / for WebSocket).
func epURL(ep endpoint, addr string) string {
	if ep == epWS || ep == epWSS {
		return ep.url(addr, "/")
	}
	return ep.url(addr, "")
}

// join connects a client of ep to the shared port of g, trusting tlsConfig for the TLS
// forms, logs it in as a new user and adds it to the fleet.
func (f *fleet) join(t *testing.T, g *gateway, ep endpoint, tlsConfig *tls.Config) *fleetMember {
	t.Helper()
	c := dialWith(t, epURL(ep, g.Addr), &timclient.Options{TLSConfig: tlsConfig})
	user := uid("fleet-" + string(ep))
	mustLogin(t, c, user)
	return f.add(string(ep), user, c)
}

// add adds a logged-in client.
func (f *fleet) add(name, user string, c *timclient.Conn) *fleetMember {
	m := &fleetMember{Name: name, User: user, C: c}
	f.members = append(f.members, m)
	return m
}

// check proves that no client dropped: each answers a heartbeat, then each sends a chat
// to the next one (a ring), which is accepted and delivered.
func (f *fleet) check(t *testing.T, after string) {
	t.Helper()
	f.rounds++
	for _, m := range f.members {
		if _, err := m.C.Sync(wait); err != nil {
			t.Fatalf("after %s: the %s client (%s) does not answer a heartbeat: %v", after, m.Name, m.User, err)
		}
	}
	for i, m := range f.members {
		next := f.members[(i+1)%len(f.members)]
		content := fmt.Sprintf("round %d, after %s: from the %s client to the %s client", f.rounds, after, m.Name, next.Name)
		r, err := m.C.ChatTo(next.User, content, wait)
		if err != nil {
			t.Fatalf("after %s: the %s client (%s) gets no answer to a chat: %v", after, m.Name, m.User, err)
		}
		mustAccepted(t, r, err)
		got := mustRecvChat(t, next.C, fmt.Sprintf("after %s: the %s client", after, next.Name))
		checkDelivered(t, got, m.User, next.User, content)
	}
}
