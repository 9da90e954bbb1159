package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
)

const testKey = "test-key"

func TestMain(m *testing.M) {
	// Keep hertz's start-up lines out of the test output.
	SetHertzLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}

// sendCall is one recorded Gateway.Send.
type sendCall struct {
	From string
	Chat packet.Chat
}

// kickCall is one recorded Gateway.Kick.
type kickCall struct {
	UserID, Reason string
}

// fakeGateway is a Gateway that records calls and answers from its fields.
type fakeGateway struct {
	mu     sync.Mutex
	sends  []sendCall
	kicks  []kickCall
	conns  map[string]int             // connections per user
	users  map[Presence][]packet.User // Users answers
	groups map[string][]string        // GroupMembers answers
	err    error                      // when set, every method but Send fails with it
	// sendResp answers Send; nil: code 10000 with the message id.
	sendResp func(ctx context.Context, from string, chat *packet.Chat) *packet.Response
}

func newFakeGateway() *fakeGateway {
	return &fakeGateway{
		conns: map[string]int{"alice": 2, "bob": 1},
		users: map[Presence][]packet.User{
			PresenceOnline:  {{UserID: "alice", Status: "online"}, {UserID: "bob", Status: "online"}},
			PresenceOffline: {{UserID: "carol", Status: "offline"}},
			PresenceAll: {{UserID: "alice", Status: "online"}, {UserID: "bob", Status: "online"},
				{UserID: "carol", Status: "offline"}},
		},
		groups: map[string][]string{"g1": {"alice", "bob"}, "empty": nil},
	}
}

func (g *fakeGateway) Send(ctx context.Context, from string, chat *packet.Chat) *packet.Response {
	g.mu.Lock()
	g.sends = append(g.sends, sendCall{From: from, Chat: *chat})
	f := g.sendResp
	g.mu.Unlock()
	if f != nil {
		return f(ctx, from, chat)
	}
	r := packet.NewResponse(packet.CmdChatResp, packet.StatusOK)
	r.Data = map[string]any{"id": "m1", "seq": 7}
	return r
}

func (g *fakeGateway) Users(_ context.Context, p Presence) ([]packet.User, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return nil, g.err
	}
	return g.users[p], nil
}

func (g *fakeGateway) Connections(_ context.Context, userID string) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, g.err
	}
	return g.conns[userID], nil
}

func (g *fakeGateway) GroupMembers(_ context.Context, groupID, after string, limit int) (MembersPage, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return MembersPage{}, g.err
	}
	m, ok := g.groups[groupID]
	if !ok {
		return MembersPage{}, fmt.Errorf("group %q: %w", groupID, ErrNotFound)
	}
	// The fake's members are sorted; page them as the gateway does.
	page := MembersPage{Total: len(m)}
	for _, id := range m {
		if id > after {
			page.Members = append(page.Members, id)
		}
	}
	if limit > 0 && len(page.Members) > limit {
		page.Members = page.Members[:limit]
		page.Next = page.Members[limit-1]
	}
	return page, nil
}

func (g *fakeGateway) Kick(_ context.Context, userID, reason string) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, g.err
	}
	g.kicks = append(g.kicks, kickCall{userID, reason})
	n := g.conns[userID]
	delete(g.conns, userID)
	return n, nil
}

func (g *fakeGateway) lastSend(t *testing.T) sendCall {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.sends) == 0 {
		t.Fatal("Gateway.Send was not called")
	}
	return g.sends[len(g.sends)-1]
}

func (g *fakeGateway) sendCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sends)
}

func (g *fakeGateway) lastKick(t *testing.T) kickCall {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.kicks) == 0 {
		t.Fatal("Gateway.Kick was not called")
	}
	return g.kicks[len(g.kicks)-1]
}

// statsGateway adds StatsSource to fakeGateway.
type statsGateway struct{ *fakeGateway }

func (statsGateway) Stats(context.Context) Stats {
	return Stats{Connections: map[string]int{"tcp": 3, "ws": 1}, OnlineUsers: 2}
}

// testServer is a Server serving on a loopback listener.
type testServer struct {
	*Server
	url    string
	client *http.Client
	done   chan error // Serve's result
}

func startServer(t *testing.T, gw Gateway, opts Options) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startServerOn(t, ln, gw, opts)
}

// startServerOn is startServer on a listener of the caller's.
func startServerOn(t *testing.T, ln net.Listener, gw Gateway, opts Options) *testServer {
	t.Helper()
	if opts.Keys == nil {
		opts.Keys = []string{testKey}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := New(gw, opts)
	ts := &testServer{
		Server: s,
		url:    "http://" + ln.Addr().String(),
		client: &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second},
		done:   make(chan error, 1),
	}
	go func() { ts.done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ts.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Shutdown")
		}
	})
	return ts
}

// reply is a decoded answer.
type reply struct {
	Status int
	Close  bool // the server closes the connection after this answer
	Header http.Header
	Raw    string
	Body   map[string]any
}

// code returns the body's "code".
func (r reply) code() int {
	f, _ := r.Body["code"].(float64)
	return int(f)
}

func (r reply) msg() string {
	s, _ := r.Body["msg"].(string)
	return s
}

func (r reply) data() map[string]any {
	m, _ := r.Body["data"].(map[string]any)
	return m
}

// do sends a request; header values "" are not sent. A nil header sends the test key.
func (ts *testServer) do(t *testing.T, method, path string, header map[string]string, body string) reply {
	t.Helper()
	r, err := ts.try(method, path, header, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// try is do without the testing.T, for goroutines.
func (ts *testServer) try(method, path string, header map[string]string, body string) (reply, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.url+path, rd)
	if err != nil {
		return reply{}, err
	}
	if header == nil {
		header = map[string]string{"X-API-Key": testKey}
	}
	for k, v := range header {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	r := reply{Status: resp.StatusCode, Close: resp.Close, Header: resp.Header, Raw: string(raw)}
	if method != http.MethodHead {
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			return r, fmt.Errorf("%s %s: Content-Type %q, want JSON; body %s", method, path, ct, raw)
		}
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			return r, fmt.Errorf("%s %s: body is not a JSON object: %w: %s", method, path, err, raw)
		}
	}
	return r, nil
}

// check compares an answer's HTTP status and code, and that msg contains wantMsg.
func check(t *testing.T, r reply, status, code int, wantMsg string) {
	t.Helper()
	if r.Status != status || r.code() != code {
		t.Errorf("got HTTP %d code %d, want HTTP %d code %d; body %s", r.Status, r.code(), status, code, r.Raw)
	}
	if !strings.Contains(r.msg(), wantMsg) {
		t.Errorf("msg %q does not contain %q", r.msg(), wantMsg)
	}
}

func TestHealth(t *testing.T) {
	ts := startServer(t, newFakeGateway(), Options{})
	r := ts.do(t, "GET", "/health", map[string]string{}, "")
	if r.Status != 200 || r.Body["status"] != "ok" {
		t.Errorf("GET /health: %d %s", r.Status, r.Raw)
	}
	r = ts.do(t, "HEAD", "/health", map[string]string{}, "")
	if r.Status != 200 {
		t.Errorf("HEAD /health: %d", r.Status)
	}
}

func TestAuth(t *testing.T) {
	ts := startServer(t, newFakeGateway(), Options{Keys: []string{"k1", testKey}})
	tests := []struct {
		name   string
		path   string
		header map[string]string
		status int
		msg    string
	}{
		{"no key", "/api/v1/users/alice", map[string]string{}, 401, "missing API key"},
		{"wrong key", "/api/v1/users/alice", map[string]string{"X-API-Key": "nope"}, 401, "invalid API key"},
		{"key prefix", "/api/v1/users/alice", map[string]string{"X-API-Key": testKey[:4]}, 401, "invalid"},
		{"key with suffix", "/api/v1/users/alice", map[string]string{"X-API-Key": testKey + "x"}, 401, "invalid"},
		{"X-API-Key", "/api/v1/users/alice", map[string]string{"X-API-Key": testKey}, 200, ""},
		{"second key", "/api/v1/users/alice", map[string]string{"X-API-Key": "k1"}, 200, ""},
		{"lower-case header", "/api/v1/users/alice", map[string]string{"x-api-key": testKey}, 200, ""},
		{"Bearer", "/api/v1/users/alice", map[string]string{"Authorization": "Bearer " + testKey}, 200, ""},
		{"bearer lower case", "/api/v1/users/alice", map[string]string{"Authorization": "bearer " + testKey}, 200, ""},
		{"Bearer wrong", "/api/v1/users/alice", map[string]string{"Authorization": "Bearer nope"}, 401, "invalid"},
		{"Basic", "/api/v1/users/alice", map[string]string{"Authorization": "Basic " + testKey}, 401, "missing"},
		{"query key refused on v1", "/api/v1/users/alice?api_key=" + testKey, map[string]string{}, 401, "missing"},
		{"query key on J-IM", "/api/user/online?userid=alice&api_key=" + testKey, map[string]string{}, 200, ""},
		{"no key on J-IM", "/api/user/online?userid=alice", map[string]string{}, 401, "missing"},
		{"wrong query key on J-IM", "/api/user/online?userid=alice&api_key=x", map[string]string{}, 401, "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(t, "GET", tc.path, tc.header, "")
			if r.Status != tc.status {
				t.Fatalf("HTTP %d, want %d: %s", r.Status, tc.status, r.Raw)
			}
			if tc.status == 401 {
				check(t, r, 401, int(packet.StatusAuthFailed), tc.msg)
				if r.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
		})
	}
}

func TestAuthJIMShape(t *testing.T) {
	ts := startServer(t, newFakeGateway(), Options{})
	r := ts.do(t, "POST", "/api/message/send", map[string]string{}, `{"to":"bob","chatType":2,"content":"x"}`)
	check(t, r, 401, int(packet.StatusAuthFailed), "missing API key")
	if r.Body["cmd"] != float64(packet.CmdChatResp) {
		t.Errorf("J-IM 401 body has cmd %v, want 12: %s", r.Body["cmd"], r.Raw)
	}
}

func TestSetKeys(t *testing.T) {
	ts := startServer(t, newFakeGateway(), Options{Keys: []string{"old"}})
	get := func(key string) int {
		return ts.do(t, "GET", "/api/v1/users/alice", map[string]string{"X-API-Key": key}, "").Status
	}
	if s := get("old"); s != 200 {
		t.Fatalf("old key before rotation: %d", s)
	}
	ts.SetKeys([]string{"new", " "})
	if s := get("old"); s != 401 {
		t.Errorf("old key after rotation: %d, want 401", s)
	}
	if s := get("new"); s != 200 {
		t.Errorf("new key after rotation: %d, want 200", s)
	}
	ts.SetKeys(nil)
	r := ts.do(t, "GET", "/api/v1/users/alice", map[string]string{"X-API-Key": "new"}, "")
	check(t, r, 401, int(packet.StatusAuthFailed), "no API key is configured")
}

func TestSetKeysConcurrent(t *testing.T) {
	ts := startServer(t, newFakeGateway(), Options{Keys: []string{"a"}})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 200 {
			ts.SetKeys([]string{"a", fmt.Sprint(i)})
		}
	}()
	go func() {
		defer wg.Done()
		for range 20 {
			if r := ts.do(t, "GET", "/api/v1/users/alice", map[string]string{"X-API-Key": "a"}, ""); r.Status != 200 {
				t.Errorf("HTTP %d during rotation", r.Status)
			}
		}
	}()
	wg.Wait()
}

func TestSendV1(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		body     string
		resp     *packet.Response // gateway answer; nil: default ok
		nilResp  bool
		status   int
		code     packet.Status
		msg      string
		wantFrom string // "" : Send must not be called
		check    func(t *testing.T, c packet.Chat)
	}{
		{name: "private", path: "/api/v1/messages",
			body:   `{"from":"alice","to":"bob","chatType":2,"msgType":0,"content":"hi","extras":{"k":1}}`,
			status: 200, code: packet.StatusOK, wantFrom: "alice",
			check: func(t *testing.T, c packet.Chat) {
				if c.To != "bob" || c.Content != "hi" || c.ChatType != 2 || c.Cmd != 11 || c.From != "alice" {
					t.Errorf("chat %+v", c)
				}
				if string(c.Extras) != `{"k":1}` {
					t.Errorf("extras %s", c.Extras)
				}
			}},
		{name: "group", path: "/api/v1/messages",
			body:   `{"from":"alice","groupId":"g1","chatType":1,"content":"hi all"}`,
			status: 200, code: packet.StatusOK, wantFrom: "alice",
			check: func(t *testing.T, c packet.Chat) {
				if c.GroupID != "g1" || c.ChatType != 1 {
					t.Errorf("chat %+v", c)
				}
			}},
		{name: "numeric strings", path: "/api/v1/messages",
			body:   `{"from":7,"to":42,"cmd":"11","chatType":"2","msgType":"1","createTime":"1700000000000","content":"x"}`,
			status: 200, code: packet.StatusOK, wantFrom: "7",
			check: func(t *testing.T, c packet.Chat) {
				if c.To != "42" || c.MsgType != 1 || c.CreateTime != 1700000000000 {
					t.Errorf("chat %+v", c)
				}
			}},
		{name: "system", path: "/api/v1/messages/system",
			body:   `{"to":"bob","chatType":2,"content":"maintenance at 5"}`,
			status: 200, code: packet.StatusOK, wantFrom: "sys"},
		{name: "system ignores from", path: "/api/v1/messages/system",
			body:   `{"from":"alice","to":"bob","chatType":2,"content":"x"}`,
			status: 200, code: packet.StatusOK, wantFrom: "sys",
			check: func(t *testing.T, c packet.Chat) {
				if c.From != "sys" {
					t.Errorf("chat.From %q, want sys", c.From)
				}
			}},
		{name: "receiver offline", path: "/api/v1/messages",
			body:   `{"from":"alice","to":"zed","chatType":2,"content":"x"}`,
			resp:   packet.NewResponse(packet.CmdChatResp, packet.StatusOffline),
			status: 200, code: packet.StatusOffline, msg: "offline", wantFrom: "alice"},
		{name: "gateway rate limit", path: "/api/v1/messages",
			body:   `{"from":"alice","to":"bob","chatType":2,"content":"x"}`,
			resp:   packet.NewResponse(packet.CmdChatResp, packet.StatusRateLimited),
			status: 429, code: packet.StatusRateLimited, wantFrom: "alice"},
		{name: "gateway not a member", path: "/api/v1/messages",
			body:   `{"from":"alice","groupId":"g9","chatType":1,"content":"x"}`,
			resp:   packet.NewResponse(packet.CmdChatResp, packet.StatusNotGroupMember),
			status: 403, code: packet.StatusNotGroupMember, wantFrom: "alice"},
		{name: "gateway storage down", path: "/api/v1/messages",
			body:   `{"from":"alice","to":"bob","chatType":2,"content":"x"}`,
			resp:   packet.NewResponse(packet.CmdChatResp, packet.StatusStorageUnavailable),
			status: 503, code: packet.StatusStorageUnavailable, wantFrom: "alice"},
		{name: "gateway nil", path: "/api/v1/messages",
			body:    `{"from":"alice","to":"bob","chatType":2,"content":"x"}`,
			nilResp: true, status: 500, code: packet.StatusSendFailed, wantFrom: "alice"},
		{name: "missing from", path: "/api/v1/messages",
			body:   `{"to":"bob","chatType":2,"content":"x"}`,
			status: 400, code: packet.StatusInvalidBody, msg: `"from": required`},
		{name: "malformed JSON", path: "/api/v1/messages",
			body:   "{\"from\":\"alice\",\n \"to\": bob}",
			status: 400, code: packet.StatusInvalidBody, msg: "invalid JSON at byte 24 (line 2, column 8)"},
		{name: "truncated JSON", path: "/api/v1/messages",
			body:   `{"from":"alice","to":"bob"`,
			status: 400, code: packet.StatusInvalidBody, msg: "unexpected end"},
		{name: "empty body", path: "/api/v1/messages",
			status: 400, code: packet.StatusInvalidBody, msg: "empty body"},
		{name: "array", path: "/api/v1/messages", body: `[{"from":"alice"}]`,
			status: 400, code: packet.StatusInvalidBody, msg: "got an array"},
		{name: "trailing data", path: "/api/v1/messages",
			body:   `{"from":"alice","to":"bob","chatType":2,"content":"x"} {}`,
			status: 400, code: packet.StatusInvalidBody, msg: "unexpected data after the JSON object"},
		{name: "unknown field", path: "/api/v1/messages",
			body:   `{"from":"alice","grupId":"g1","chatType":1,"content":"x"}`,
			status: 400, code: packet.StatusInvalidBody, msg: `unknown field "grupId"`},
		{name: "content not a string", path: "/api/v1/messages",
			body:   `{"from":"alice","to":"bob","chatType":2,"content":5}`,
			status: 400, code: packet.StatusInvalidBody, msg: `field "content": expected a string, got JSON number`},
		{name: "chatType not a number", path: "/api/v1/messages",
			body:   `{"from":"alice","to":"bob","chatType":"private","content":"x"}`,
			status: 400, code: packet.StatusInvalidBody, msg: `field "chatType": not an integer`},
		{name: "extras not an object", path: "/api/v1/messages",
			body:   `{"from":"alice","to":"bob","chatType":2,"content":"x","extras":[1]}`,
			status: 400, code: packet.StatusInvalidBody, msg: `field "extras": expected a JSON object, got an array`},
		{name: "wrong cmd", path: "/api/v1/messages",
			body:   `{"from":"alice","to":"bob","chatType":2,"cmd":5}`,
			status: 400, code: packet.StatusInvalidBody, msg: `"cmd": must be 11`},
		{name: "no chatType", path: "/api/v1/messages",
			body:   `{"from":"alice","to":"bob","content":"x"}`,
			status: 400, code: packet.StatusNoReceiver, msg: `"chatType": must be 1 (group) or 2 (private)`},
		{name: "private without to", path: "/api/v1/messages",
			body:   `{"from":"alice","chatType":2,"content":"x"}`,
			status: 400, code: packet.StatusNoReceiver, msg: `"to": required`},
		{name: "group without groupId", path: "/api/v1/messages",
			body:   `{"from":"alice","chatType":1,"to":"bob","content":"x"}`,
			status: 400, code: packet.StatusNoReceiver, msg: `"groupId": required`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gw := newFakeGateway()
			if tc.resp != nil || tc.nilResp {
				gw.sendResp = func(context.Context, string, *packet.Chat) *packet.Response { return tc.resp }
			}
			ts := startServer(t, gw, Options{SystemUser: "sys"})
			r := ts.do(t, "POST", tc.path, nil, tc.body)
			check(t, r, tc.status, int(tc.code), tc.msg)
			if _, ok := r.Body["data"]; !ok {
				t.Errorf("envelope without data: %s", r.Raw)
			}
			if tc.wantFrom == "" {
				if n := gw.sendCount(); n != 0 {
					t.Errorf("Send called %d times for a refused request", n)
				}
				return
			}
			call := gw.lastSend(t)
			if call.From != tc.wantFrom {
				t.Errorf("Send from %q, want %q", call.From, tc.wantFrom)
			}
			if tc.check != nil {
				tc.check(t, call.Chat)
			}
			if tc.code == packet.StatusOK && r.data()["id"] != "m1" {
				t.Errorf("data of the gateway's response not passed on: %s", r.Raw)
			}
		})
	}
}

func TestSendMethods(t *testing.T) {
	ts := startServer(t, newFakeGateway(), Options{})
	r := ts.do(t, "GET", "/api/v1/messages", nil, "")
	if r.Status != 405 {
		t.Errorf("GET /api/v1/messages: HTTP %d, want 405: %s", r.Status, r.Raw)
	}
	r = ts.do(t, "GET", "/api/v1/nothing", nil, "")
	check(t, r, 404, int(packet.StatusNotFound), "no endpoint")
	r = ts.do(t, "GET", "/api/v1/users/", nil, "")
	check(t, r, 404, int(packet.StatusNotFound), "")
}

func TestBodyLimit(t *testing.T) {
	gw := newFakeGateway()
	ts := startServer(t, gw, Options{MaxBodyBytes: 1024})
	chat := func(size int) string {
		b := `{"from":"alice","to":"bob","chatType":2,"content":"`
		return b + strings.Repeat("x", size-len(b)-2) + `"}`
	}
	t.Run("at the limit", func(t *testing.T) {
		r := ts.do(t, "POST", "/api/v1/messages", nil, chat(1024))
		check(t, r, 200, int(packet.StatusOK), "")
	})
	for _, path := range []string{"/api/v1/messages", "/api/v1/messages/system", "/api/message/send"} {
		t.Run("over "+path, func(t *testing.T) {
			before := gw.sendCount()
			r := ts.do(t, "POST", path, nil, chat(1025))
			check(t, r, 413, int(packet.StatusTooLarge), "over the limit of 1024 bytes")
			if gw.sendCount() != before {
				t.Error("an oversized message reached the gateway")
			}
		})
	}
	t.Run("far over, connection reused", func(t *testing.T) {
		r := ts.do(t, "POST", "/api/v1/messages", nil, chat(100<<10))
		check(t, r, 413, int(packet.StatusTooLarge), "")
		if r.Close {
			t.Error("connection closed after a body that could be drained")
		}
		r = ts.do(t, "POST", "/api/v1/messages", nil, chat(500))
		check(t, r, 200, int(packet.StatusOK), "")
	})
	t.Run("chunked", func(t *testing.T) {
		req, _ := http.NewRequest("POST", ts.url+"/api/v1/messages", io.MultiReader(strings.NewReader(chat(3000))))
		req.Header.Set("X-API-Key", testKey)
		req.ContentLength = -1 // chunked
		resp, err := ts.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 413 {
			body, _ := io.ReadAll(resp.Body)
			t.Errorf("HTTP %d, want 413: %s", resp.StatusCode, body)
		}
	})
	t.Run("chunked under the limit", func(t *testing.T) {
		req, _ := http.NewRequest("POST", ts.url+"/api/v1/messages", io.MultiReader(strings.NewReader(chat(900))))
		req.Header.Set("X-API-Key", testKey)
		req.ContentLength = -1
		resp, err := ts.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			body, _ := io.ReadAll(resp.Body)
			t.Errorf("HTTP %d, want 200: %s", resp.StatusCode, body)
		}
	})
	t.Run("huge declared length", func(t *testing.T) {
		// The server must answer without reading the declared 1 GB.
		c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{\"from\":%s", testKey, strings.Repeat(" ", 4096))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 413 || !strings.Contains(string(body), `"code":10026`) {
			t.Errorf("HTTP %d %s, want 413 code 10026", resp.StatusCode, body)
		}
		if !resp.Close {
			t.Error("connection not closed after a body that was not read")
		}
	})
}

func TestSlowClientTimesOut(t *testing.T) {
	ts := startServer(t, newFakeGateway(), Options{ReadTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost:"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, _ = io.Copy(io.Discard, c) // returns when the server closes the connection
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a client that never finished its headers was kept %v", d)
	}
}

func TestJIM(t *testing.T) {
	form := map[string]string{"X-API-Key": testKey, "Content-Type": "application/x-www-form-urlencoded"}
	tests := []struct {
		name     string
		method   string
		path     string
		header   map[string]string
		body     string
		cmd      packet.Cmd
		code     packet.Status
		msg      string
		wantFrom string
		wantKick string
		data     map[string]any
	}{
		{name: "send with from", method: "POST", path: "/api/message/send",
			body: `{"from":"alice","to":"bob","cmd":11,"chatType":2,"msgType":0,"content":"hi"}`,
			cmd:  packet.CmdChatResp, code: packet.StatusOK, wantFrom: "alice"},
		{name: "send without from", method: "POST", path: "/api/message/send",
			body: `{"to":"bob","cmd":"11","chatType":"2","msgType":"0","content":"hi","command":"COMMAND_CHAT_REQ"}`,
			cmd:  packet.CmdChatResp, code: packet.StatusOK, wantFrom: "system"},
		{name: "send receiver left to the core", method: "POST", path: "/api/message/send",
			body: `{"from":"alice","content":"hi"}`,
			cmd:  packet.CmdChatResp, code: packet.StatusOK, wantFrom: "alice"},
		{name: "send bad JSON", method: "POST", path: "/api/message/send", body: `{"from":`,
			cmd: packet.CmdChatResp, code: packet.StatusInvalidBody, msg: "invalid JSON"},
		{name: "online", method: "GET", path: "/api/user/online?userid=alice",
			cmd: packet.CmdGetUserResp, code: packet.StatusReceiverOnline,
			data: map[string]any{"userId": "alice", "online": true}},
		{name: "offline", method: "GET", path: "/api/user/online?userid=zed",
			cmd: packet.CmdGetUserResp, code: packet.StatusOffline,
			data: map[string]any{"userId": "zed", "online": false}},
		{name: "online POST query", method: "POST", path: "/api/user/online?userid=bob",
			cmd: packet.CmdGetUserResp, code: packet.StatusReceiverOnline},
		{name: "online POST form", method: "POST", path: "/api/user/online", header: form, body: "userid=bob",
			cmd: packet.CmdGetUserResp, code: packet.StatusReceiverOnline},
		{name: "online userId spelling", method: "GET", path: "/api/user/online?userId=alice",
			cmd: packet.CmdGetUserResp, code: packet.StatusReceiverOnline},
		{name: "online missing userid", method: "GET", path: "/api/user/online",
			cmd: packet.CmdGetUserResp, code: packet.StatusInvalidBody, msg: "missing parameter userid"},
		{name: "close", method: "GET", path: "/api/user/close?userid=alice",
			cmd: packet.CmdCloseReq, code: packet.StatusCloseOK, wantKick: "alice",
			data: map[string]any{"userId": "alice", "closed": float64(2)}},
		{name: "close POST form", method: "POST", path: "/api/user/close", header: form, body: "userid=bob&x=1",
			cmd: packet.CmdCloseReq, code: packet.StatusCloseOK, wantKick: "bob"},
		{name: "close offline", method: "POST", path: "/api/user/close?userid=zed",
			cmd: packet.CmdCloseReq, code: packet.StatusCloseOK, wantKick: "zed",
			data: map[string]any{"userId": "zed", "closed": float64(0)}},
		{name: "close missing userid", method: "POST", path: "/api/user/close",
			cmd: packet.CmdCloseReq, code: packet.StatusInvalidBody, msg: "userid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gw := newFakeGateway()
			ts := startServer(t, gw, Options{})
			r := ts.do(t, tc.method, tc.path, tc.header, tc.body)
			// J-IM answered everything with HTTP 200 and the outcome in code.
			check(t, r, 200, int(tc.code), tc.msg)
			if r.Body["cmd"] != float64(tc.cmd) || r.Body["command"] != tc.cmd.String() {
				t.Errorf("cmd %v command %v, want %d %s", r.Body["cmd"], r.Body["command"], tc.cmd, tc.cmd)
			}
			for k, v := range tc.data {
				if r.data()[k] != v {
					t.Errorf("data.%s = %v, want %v (%s)", k, r.data()[k], v, r.Raw)
				}
			}
			if tc.wantFrom != "" && gw.lastSend(t).From != tc.wantFrom {
				t.Errorf("Send from %q, want %q", gw.lastSend(t).From, tc.wantFrom)
			}
			if tc.wantKick != "" {
				if k := gw.lastKick(t); k.UserID != tc.wantKick || k.Reason == "" {
					t.Errorf("Kick %+v, want user %q and a reason", k, tc.wantKick)
				}
			}
		})
	}
}

func TestJIMGatewayAnswerPassedOn(t *testing.T) {
	gw := newFakeGateway()
	gw.sendResp = func(_ context.Context, _ string, _ *packet.Chat) *packet.Response {
		return packet.NewResponse(packet.CmdChatResp, packet.StatusOffline)
	}
	ts := startServer(t, gw, Options{})
	r := ts.do(t, "POST", "/api/message/send", nil, `{"from":"a","to":"b","chatType":2,"content":"x"}`)
	check(t, r, 200, int(packet.StatusOffline), "receiver offline")
}

func TestUsers(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		err    error
		status int
		code   packet.Status
		msg    string
		want   []string
		total  int
	}{
		{"default online", "", nil, 200, packet.StatusGetOnlineOK, "", []string{"alice", "bob"}, 2},
		{"online", "?status=online", nil, 200, packet.StatusGetOnlineOK, "", []string{"alice", "bob"}, 2},
		{"offline", "?status=offline", nil, 200, packet.StatusGetOfflineOK, "", []string{"carol"}, 1},
		{"all", "?status=all", nil, 200, packet.StatusGetUserOK, "", []string{"alice", "bob", "carol"}, 3},
		{"page", "?status=all&offset=1&limit=1", nil, 200, packet.StatusGetUserOK, "", []string{"bob"}, 3},
		{"offset past the end", "?status=all&offset=10", nil, 200, packet.StatusGetUserOK, "", []string{}, 3},
		{"bad status", "?status=away", nil, 400, packet.StatusInvalidBody, `"away" is not one of`, nil, 0},
		{"bad limit", "?limit=-1", nil, 400, packet.StatusInvalidBody, "query parameter limit", nil, 0},
		{"bad offset", "?offset=x", nil, 400, packet.StatusInvalidBody, "query parameter offset", nil, 0},
		{"persistence off", "?status=offline", fmt.Errorf("list: %w", ErrPersistenceOff), 501, packet.StatusPersistenceOff, "persistence is off", nil, 0},
		{"storage down", "?status=all", errors.New("mongo: timeout"), 503, packet.StatusStorageUnavailable, "mongo: timeout", nil, 0},
		{"deadline", "", context.DeadlineExceeded, 503, packet.StatusServerBusy, "deadline", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gw := newFakeGateway()
			gw.err = tc.err
			ts := startServer(t, gw, Options{})
			r := ts.do(t, "GET", "/api/v1/users"+tc.query, nil, "")
			check(t, r, tc.status, int(tc.code), tc.msg)
			if tc.want == nil {
				return
			}
			var got struct {
				Data usersPage `json:"data"`
			}
			if err := json.Unmarshal([]byte(r.Raw), &got); err != nil {
				t.Fatal(err)
			}
			ids := []string{}
			for _, u := range got.Data.Users {
				ids = append(ids, u.UserID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.want) || got.Data.Total != tc.total {
				t.Errorf("users %v total %d, want %v total %d", ids, got.Data.Total, tc.want, tc.total)
			}
			if !strings.Contains(r.Raw, `"users":[`) {
				t.Errorf("users is not a JSON array: %s", r.Raw)
			}
		})
	}
}

func TestGetUser(t *testing.T) {
	gw := newFakeGateway()
	gw.conns["a/b c"] = 1
	ts := startServer(t, gw, Options{})
	tests := []struct {
		path   string
		id     string
		online bool
		conns  float64
	}{
		{"/api/v1/users/alice", "alice", true, 2},
		{"/api/v1/users/zed", "zed", false, 0},
		{"/api/v1/users/" + url.PathEscape("a/b c"), "a/b c", true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			r := ts.do(t, "GET", tc.path, nil, "")
			check(t, r, 200, int(packet.StatusGetUserOK), "")
			d := r.data()
			if d["userId"] != tc.id || d["online"] != tc.online || d["connections"] != tc.conns {
				t.Errorf("data %v, want %s online=%v connections=%v", d, tc.id, tc.online, tc.conns)
			}
		})
	}
	gw.mu.Lock()
	gw.err = errors.New("cluster lookup failed")
	gw.mu.Unlock()
	check(t, ts.do(t, "GET", "/api/v1/users/alice", nil, ""), 503, int(packet.StatusStorageUnavailable), "cluster lookup failed")
}

func TestGroupMembers(t *testing.T) {
	ts := startServer(t, newFakeGateway(), Options{})
	r := ts.do(t, "GET", "/api/v1/groups/g1/members", nil, "")
	check(t, r, 200, int(packet.StatusOK), "")
	if fmt.Sprint(r.data()["members"]) != "[alice bob]" || r.data()["total"] != float64(2) || r.data()["groupId"] != "g1" {
		t.Errorf("data %v", r.data())
	}
	r = ts.do(t, "GET", "/api/v1/groups/empty/members", nil, "")
	check(t, r, 200, int(packet.StatusOK), "")
	if !strings.Contains(r.Raw, `"members":[]`) {
		t.Errorf("empty group: members is not []: %s", r.Raw)
	}
	r = ts.do(t, "GET", "/api/v1/groups/nope/members", nil, "")
	check(t, r, 404, int(packet.StatusNotFound), `group "nope": not found`)

	// Paging: ?limit= and ?after= reach the gateway; next is the last id of a full page.
	r = ts.do(t, "GET", "/api/v1/groups/g1/members?limit=1", nil, "")
	check(t, r, 200, int(packet.StatusOK), "")
	if fmt.Sprint(r.data()["members"]) != "[alice]" || r.data()["next"] != "alice" || r.data()["total"] != float64(2) {
		t.Errorf("first page: %v", r.data())
	}
	r = ts.do(t, "GET", "/api/v1/groups/g1/members?limit=1&after=alice", nil, "")
	check(t, r, 200, int(packet.StatusOK), "")
	if fmt.Sprint(r.data()["members"]) != "[bob]" || strings.Contains(r.Raw, `"next"`) {
		t.Errorf("last page: %s", r.Raw)
	}
	for _, bad := range []string{"0", "-3", "ten"} {
		r = ts.do(t, "GET", "/api/v1/groups/g1/members?limit="+bad, nil, "")
		check(t, r, 400, int(packet.StatusInvalidBody), fmt.Sprintf("query parameter limit: %q is not a positive integer", bad))
	}
}

func TestKick(t *testing.T) {
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		code   packet.Status
		msg    string
		reason string
		closed float64
	}{
		{"POST kick", "POST", "/api/v1/users/alice/kick", "", 200, packet.StatusCloseOK, "", reasonKick, 2},
		{"POST kick with reason body", "POST", "/api/v1/users/alice/kick", `{"reason":"spam"}`, 200, packet.StatusCloseOK, "", "spam", 2},
		{"POST kick with reason query", "POST", "/api/v1/users/bob/kick?reason=bye", "", 200, packet.StatusCloseOK, "", "bye", 1},
		{"DELETE connections", "DELETE", "/api/v1/users/alice/connections", "", 200, packet.StatusCloseOK, "", reasonKick, 2},
		{"offline user", "POST", "/api/v1/users/zed/kick", "", 200, packet.StatusCloseOK, "", reasonKick, 0},
		{"bad body", "POST", "/api/v1/users/alice/kick", `{"reason":1}`, 400, packet.StatusInvalidBody, `field "reason"`, "", 0},
		{"unknown field", "POST", "/api/v1/users/alice/kick", `{"why":"x"}`, 400, packet.StatusInvalidBody, `unknown field "why"`, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gw := newFakeGateway()
			ts := startServer(t, gw, Options{})
			r := ts.do(t, tc.method, tc.path, nil, tc.body)
			check(t, r, tc.status, int(tc.code), tc.msg)
			if tc.status != 200 {
				return
			}
			if k := gw.lastKick(t); k.Reason != tc.reason {
				t.Errorf("reason %q, want %q", k.Reason, tc.reason)
			}
			if r.data()["closed"] != tc.closed {
				t.Errorf("closed %v, want %v", r.data()["closed"], tc.closed)
			}
		})
	}
}

func TestStats(t *testing.T) {
	ts := startServer(t, statsGateway{newFakeGateway()}, Options{})
	r := ts.do(t, "GET", "/api/v1/stats", nil, "")
	check(t, r, 200, int(packet.StatusOK), "")
	if r.data()["onlineUsers"] != float64(2) {
		t.Errorf("stats %s", r.Raw)
	}
	ts2 := startServer(t, newFakeGateway(), Options{})
	check(t, ts2.do(t, "GET", "/api/v1/stats", nil, ""), 404, int(packet.StatusNotFound), "not available")
}

func TestPanicIsA500(t *testing.T) {
	gw := newFakeGateway()
	gw.sendResp = func(context.Context, string, *packet.Chat) *packet.Response { panic("boom") }
	ts := startServer(t, gw, Options{})
	r := ts.do(t, "POST", "/api/v1/messages", nil, `{"from":"a","to":"b","chatType":2,"content":"x"}`)
	check(t, r, 500, int(packet.StatusSendFailed), "internal error")
	check(t, ts.do(t, "GET", "/api/v1/users/alice", nil, ""), 200, int(packet.StatusGetUserOK), "")
}

func TestShutdownWaitsForRequests(t *testing.T) {
	gw := newFakeGateway()
	entered, release := make(chan struct{}), make(chan struct{})
	gw.sendResp = func(context.Context, string, *packet.Chat) *packet.Response {
		close(entered)
		<-release
		return packet.NewResponse(packet.CmdChatResp, packet.StatusOK)
	}
	ts := startServer(t, gw, Options{})
	// An idle keep-alive connection must not hold Shutdown up.
	check(t, ts.do(t, "GET", "/api/v1/users/alice", nil, ""), 200, int(packet.StatusGetUserOK), "")

	got := make(chan reply, 1)
	go func() {
		r, err := ts.try("POST", "/api/v1/messages", nil, `{"from":"a","to":"b","chatType":2,"content":"x"}`)
		if err != nil {
			r.Raw = err.Error()
		}
		got <- r
	}()
	<-entered
	shut := make(chan error, 1)
	start := time.Now()
	go func() { shut <- ts.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a request was in progress", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	r := <-got
	check(t, r, 200, int(packet.StatusOK), "")
	if !r.Close {
		t.Errorf("answer during shutdown without Connection: close: %v", r.Header)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	select {
	case err := <-ts.done:
		ts.done <- err // for the cleanup
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := ts.Serve(newChanListener()); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v, want ErrServerClosed", err)
	}
}

func TestShutdownDeadline(t *testing.T) {
	gw := newFakeGateway()
	entered := make(chan struct{})
	gw.sendResp = func(ctx context.Context, _ string, _ *packet.Chat) *packet.Response {
		close(entered)
		<-ctx.Done() // until Shutdown gives up and cancels the call
		return packet.NewResponse(packet.CmdChatResp, packet.StatusServerBusy)
	}
	ts := startServer(t, gw, Options{HandlerTimeout: time.Minute})
	go func() {
		req, _ := http.NewRequest("POST", ts.url+"/api/v1/messages",
			strings.NewReader(`{"from":"a","to":"b","chatType":2,"content":"x"}`))
		req.Header.Set("X-API-Key", testKey)
		if resp, err := ts.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want deadline exceeded", err)
	}
}

// chanListener is a listener fed over a channel, like the transport's listener for
// connections sniffed as HTTP on the shared port.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4zero} }

func TestServeChannelListenerAndSecondPort(t *testing.T) {
	// One Server on two listeners at once: a dedicated port (startServer) and a
	// channel-fed one fed by a plain accept loop.
	ts := startServer(t, newFakeGateway(), Options{})
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	cl := newChanListener()
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			select {
			case cl.ch <- c:
			case <-cl.done:
				c.Close()
				return
			}
		}
	}()
	served := make(chan error, 1)
	go func() { served <- ts.Serve(cl) }()

	other := &testServer{Server: ts.Server, url: "http://" + tcp.Addr().String(),
		client: &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}}
	defer other.client.CloseIdleConnections()
	for range 3 {
		check(t, other.do(t, "GET", "/api/v1/users/alice", nil, ""), 200, int(packet.StatusGetUserOK), "")
		check(t, ts.do(t, "GET", "/api/v1/users/alice", nil, ""), 200, int(packet.StatusGetUserOK), "")
	}
	if err := ts.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve(channel listener): %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve(channel listener) did not return after Shutdown")
	}
}

// tempErr is a temporary Accept error (like EMFILE).
type tempErr struct{}

func (tempErr) Error() string   { return "too many open files" }
func (tempErr) Temporary() bool { return true }
func (tempErr) Timeout() bool   { return false }

// flakyListener fails its first Accepts with a temporary error.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, tempErr{}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func TestAcceptRetriesTemporaryErrors(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(newFakeGateway(), Options{Keys: []string{testKey}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	served := make(chan error, 1)
	go func() { served <- s.Serve(&flakyListener{Listener: tcp, fails: 3}) }()
	ts := &testServer{Server: s, url: "http://" + tcp.Addr().String(),
		client: &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}}
	defer ts.client.CloseIdleConnections()
	check(t, ts.do(t, "GET", "/api/v1/users/alice", nil, ""), 200, int(packet.StatusGetUserOK), "")
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
