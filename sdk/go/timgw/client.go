// Package timgw is the Go client SDK of the timgw gateway: one user's session that logs
// in, keeps the connection up (heartbeats, reconnection with backoff, login again, groups
// joined again), fetches and confirms the messages kept while it was away, and turns the
// gateway's pushes into typed events. It speaks WebSocket (ws://, wss://) or t-im's TCP
// framing (tcp://, tls://) through package wire, the low-level connection one directory
// down, which the integration tests and timgw-bench use directly.
//
// It has the feature set of the JavaScript SDK (sdk/js): chats with their cmd 12
// answers (kept in an outbox and written again after a reconnect until answered), groups, typing, receipts, conversations, history, recall, offline messages
// delivered once. README.md beside this file has the guide; docs/protocol.md the wire.
//
// Events reach Options.OnEvent from one goroutine, in the order they happened; a callback
// may call the client's methods (the reading goroutine never waits for it).
package timgw

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/sdk/go/timgw/wire"
)

// Defaults of Options.
const (
	DefaultHeartbeat       = 30 * time.Second
	DefaultRequestTimeout  = 15 * time.Second
	DefaultOfflinePageSize = 100
	DefaultBackoffMin      = 500 * time.Millisecond
	DefaultBackoffMax      = 30 * time.Second
	DefaultBackoffJitter   = 0.5
)

// maxSeen is how many message ids the client remembers to emit each chat once.
const maxSeen = 5000

// Options configure Dial. UserID or Token is required.
type Options struct {
	// UserID and Password log in with cmd 5 (open auth mode: any password).
	UserID, Password string
	// Token is an HS256 JWT for the gateway's jwt auth mode (with or without UserID).
	Token string
	// Reconnect is the backoff between reconnection attempts after a lost connection.
	Reconnect Backoff
	// Heartbeat is the cmd 13 period (DefaultHeartbeat when zero; negative: none). A
	// connection silent for 2.5 periods is taken as dead and replaced.
	Heartbeat time.Duration
	// RequestTimeout bounds the wait for an answer when the context has no earlier
	// deadline (DefaultRequestTimeout when zero); for a chat in the outbox, the time spent
	// waiting for a reconnection included.
	RequestTimeout time.Duration
	// NoOfflineFetch turns off the offline fetch after every login.
	NoOfflineFetch bool
	// OfflinePageSize is the page size of the offline fetch (DefaultOfflinePageSize when zero).
	OfflinePageSize int
	// NoOutbox turns the outbox off: a chat whose answer a lost connection cut off
	// fails with ErrConnLost, and a Send while reconnecting with ErrNotConnected.
	// With the outbox (the default) such chats are written again after the next login,
	// with the same ids, before new chats (README.md, "Outbox").
	NoOutbox bool
	// MaxOutbox bounds the chats waiting for their answers (DefaultMaxOutbox when zero);
	// a Send beyond it fails at once with ErrOutboxFull.
	MaxOutbox int
	// Wire tunes the connection: TLS configuration, dial timeout, local address.
	Wire wire.Options
	// OnEvent receives every event (nil: events are dropped).
	OnEvent func(Event)
}

// Backoff is the wait before reconnection attempt n: Min·2^(n-1) capped at Max, less a
// random share of up to Jitter, so that many clients do not come back at once.
type Backoff struct {
	Min, Max time.Duration // DefaultBackoffMin, DefaultBackoffMax when zero
	Jitter   float64       // 0..1; DefaultBackoffJitter when zero, negative for none
	Disabled bool          // no reconnection: a lost connection ends the session
}

// Delay returns the wait before attempt (1, 2, ...); rnd is a number in [0, 1).
func (b Backoff) Delay(attempt int, rnd float64) time.Duration {
	lo, hi, j := b.Min, b.Max, b.Jitter
	if lo <= 0 {
		lo = DefaultBackoffMin
	}
	if hi <= 0 {
		hi = DefaultBackoffMax
	}
	switch {
	case j == 0:
		j = DefaultBackoffJitter
	case j < 0:
		j = 0
	case j > 1:
		j = 1
	}
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return time.Duration(float64(d) * (1 - j*rnd))
}

// State is where a client's session is.
type State int

// States.
const (
	StateOnline       State = iota // logged in
	StateReconnecting              // the connection was lost; attempts go on
	StateClosed                    // Close was called, the login was refused, or reconnection is off
)

// String returns "online", "reconnecting" or "closed".
func (s State) String() string {
	switch s {
	case StateOnline:
		return "online"
	case StateReconnecting:
		return "reconnecting"
	}
	return "closed"
}

// Errors of the client itself (refusals by the gateway are *Error).
var (
	ErrNotConnected = errors.New("timgw: not connected")
	ErrClosed       = errors.New("timgw: client closed")
	ErrConnLost     = errors.New("timgw: connection lost before the answer")
)

// Error is a refusal by the gateway: the status code and message of its answer.
type Error struct {
	Code     packet.Status
	Msg      string
	Response *wire.Response // the whole answer (nil for a cmd 0 without one)
}

func (e *Error) Error() string { return fmt.Sprintf("timgw: refused: %d %s", e.Code, e.Msg) }

// okCodes are the status codes that mean success (docs/protocol.md section 3).
var okCodes = map[packet.Status]bool{
	packet.StatusOK: true, packet.StatusOffline: true, packet.StatusGetUserOK: true, packet.StatusGetOnlineOK: true,
	packet.StatusGetOfflineOK: true, packet.StatusLoginOK: true, packet.StatusAuthOK: true, packet.StatusJoinGroupOK: true,
	packet.StatusGetOfflineMsgOK: true, packet.StatusGetHistoryOK: true, packet.StatusReceiverOnline: true, packet.StatusCloseOK: true,
}

// Client is one user's session with a gateway. Its methods are safe for concurrent use.
type Client struct {
	url  string
	opts Options

	mu         sync.Mutex
	conn       *wire.Conn // logged in; nil while (re)connecting
	connecting *wire.Conn // being logged in, closed by Close
	pending    map[packet.Cmd][]*call
	groups     map[string]bool
	user       packet.User
	state      State
	closed     bool
	seen       map[string]bool
	seenOrder  []string
	idSeq      uint64
	outbox     []*outItem // chats waiting for their final answers, in send order

	closeCh  chan struct{}
	wg       sync.WaitGroup
	offline  sync.Mutex // one offline fetch at a time
	events   eventQueue
	idPrefix string
}

// call is a request waiting for its answer.
type call struct {
	key  string // the chat or recall id an answer names, "" for answers in order
	ch   chan result
	item *outItem // a chat of the outbox (ch unused)
}

type result struct {
	r   *wire.Response
	err error
}

// Dial connects to url (ws://host:8888/, wss://..., tcp://host:8888, tls://...), logs in
// and returns the session. A first connection that fails or is refused is an error (no
// retry); once logged in, the client reconnects by itself. The offline fetch of the first
// login starts in the background: its chats arrive as Message events with Offline set.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	if opts.UserID == "" && opts.Token == "" {
		return nil, errors.New("timgw: Options.UserID or Options.Token is required")
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.OfflinePageSize <= 0 {
		opts.OfflinePageSize = DefaultOfflinePageSize
	}
	if opts.MaxOutbox <= 0 {
		opts.MaxOutbox = DefaultMaxOutbox
	}
	var rb [6]byte
	_, _ = crand.Read(rb[:])
	c := &Client{
		url: url, opts: opts,
		pending: map[packet.Cmd][]*call{}, groups: map[string]bool{}, seen: map[string]bool{},
		closeCh: make(chan struct{}), idPrefix: "go-" + hex.EncodeToString(rb[:]) + "-",
	}
	c.events.init(opts.OnEvent)
	conn, err := c.connect(ctx)
	if err != nil {
		c.events.finish()
		return nil, err
	}
	c.wg.Add(1)
	go c.run(conn)
	if opts.Heartbeat > 0 {
		c.wg.Add(1)
		go c.heartbeat()
	}
	return c, nil
}

// connect dials and logs in; on success the connection is the client's current one.
func (c *Client) connect(ctx context.Context) (*wire.Conn, error) {
	wopts := c.opts.Wire
	if dl, ok := ctx.Deadline(); ok && (wopts.Timeout <= 0 || time.Until(dl) < wopts.Timeout) {
		wopts.Timeout = max(time.Until(dl), time.Millisecond)
	}
	conn, err := wire.Dial(c.url, &wopts)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		conn.Close()
		return nil, ErrClosed
	}
	c.connecting = conn
	c.mu.Unlock()
	r, err := conn.Request(packet.CmdLoginReq,
		packet.Login{UserID: packet.Str(c.opts.UserID), Password: c.opts.Password, Token: c.opts.Token},
		c.timeout(ctx))
	if err == nil && r.Code != packet.StatusLoginOK {
		err = &Error{Code: r.Code, Msg: r.Msg, Response: r}
	}
	var u packet.User
	if err == nil && len(r.User) > 0 {
		if derr := jsonUnmarshal(r.User, &u); derr != nil {
			err = fmt.Errorf("timgw: login answer: %w", derr)
		}
	}
	c.mu.Lock()
	c.connecting = nil
	if err == nil && c.closed {
		err = ErrClosed
	}
	if err != nil {
		c.mu.Unlock()
		conn.Close()
		return nil, err
	}
	if u.UserID == "" {
		u.UserID = c.opts.UserID
	}
	reconnect := c.state == StateReconnecting
	c.conn, c.user, c.state = conn, u, StateOnline
	c.resendOutbox(conn) // before any new chat: the lock is held
	groups := make([]string, 0, len(c.groups))
	for g := range c.groups {
		groups = append(groups, g)
	}
	c.mu.Unlock()
	c.events.emit(LoggedIn{User: u, Reconnect: reconnect})
	c.wg.Add(1)
	go c.afterLogin(groups)
	return conn, nil
}

// afterLogin joins the groups again and fetches the offline messages.
func (c *Client) afterLogin(groups []string) {
	defer c.wg.Done()
	ctx, cancel := c.lifetime()
	defer cancel()
	for _, g := range groups {
		if _, err := c.Join(ctx, g); err != nil && !c.isClosed() {
			c.events.emit(ErrorEvent{Err: fmt.Errorf("timgw: join %s again: %w", g, err)})
		}
	}
	if c.opts.NoOfflineFetch {
		return
	}
	// A fetch cut short by a lost connection runs again after the next login.
	if _, err := c.FetchOffline(ctx); err != nil && !errors.Is(err, ErrConnLost) && !errors.Is(err, ErrNotConnected) && !c.isClosed() {
		c.events.emit(ErrorEvent{Err: fmt.Errorf("timgw: offline fetch: %w", err)})
	}
}

// lifetime returns a context cancelled by Close.
func (c *Client) lifetime() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-c.closeCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// run reads the current connection and replaces it when it is lost, until the session ends.
func (c *Client) run(conn *wire.Conn) {
	defer c.wg.Done()
	for {
		err := c.read(conn)
		conn.Close()
		c.dropConn(conn, fmt.Errorf("%w: %v", ErrConnLost, err))
		if c.isClosed() {
			c.end(ErrClosed)
			return
		}
		if c.opts.Reconnect.Disabled {
			c.failOutbox(func(id string) error { return fmt.Errorf("%w (chat %s): %v", ErrConnLost, id, err) })
			c.end(err)
			return
		}
		c.setState(StateReconnecting)
		c.events.emit(Closed{Err: err, WillReconnect: true})
		if conn = c.reconnect(); conn == nil {
			return
		}
	}
}

// read hands the connection's packets to handle until it fails.
func (c *Client) read(conn *wire.Conn) error {
	idle := 24 * time.Hour
	if c.opts.Heartbeat > 0 {
		idle = c.opts.Heartbeat * 5 / 2
	}
	for {
		p, err := conn.Recv(idle)
		if err != nil {
			return err
		}
		c.handle(p)
	}
}

// reconnect tries until logged in again; nil when the session ended meanwhile.
func (c *Client) reconnect() *wire.Conn {
	for attempt := 1; ; attempt++ {
		d := c.opts.Reconnect.Delay(attempt, rand.Float64())
		c.events.emit(Reconnecting{Attempt: attempt, Delay: d})
		select {
		case <-c.closeCh:
			c.end(ErrClosed)
			return nil
		case <-time.After(d):
		}
		conn, err := c.connect(context.Background())
		if err == nil {
			return conn
		}
		var refused *Error
		if errors.Is(err, ErrClosed) || errors.As(err, &refused) {
			// The same credentials would be refused again: the session ends.
			c.failOutbox(func(id string) error {
				return fmt.Errorf("timgw: chat %s not sent: the session ended: %w", id, err)
			})
			c.end(err)
			return nil
		}
		c.events.emit(ErrorEvent{Err: fmt.Errorf("timgw: reconnect attempt %d: %w", attempt, err)})
	}
}

// end closes the session for good and emits the last event.
func (c *Client) end(err error) {
	c.setState(StateClosed)
	c.events.emit(Closed{Err: err, WillReconnect: false})
	c.events.finish()
}

func (c *Client) heartbeat() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-c.closeCh:
			return
		case <-t.C:
			if conn := c.current(); conn != nil {
				_ = conn.Send(packet.CmdHeartbeatReq, packet.Heartbeat{Cmd: packet.Int(packet.CmdHeartbeatReq), HBByte: 1})
			}
		}
	}
}

// dropConn forgets conn and fails the requests waiting for its answers.
func (c *Client) dropConn(conn *wire.Conn, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != conn {
		return
	}
	c.conn = nil
	for _, q := range c.pending {
		for _, cl := range q {
			if cl.item == nil {
				cl.ch <- result{err: err}
			}
		}
	}
	c.unwrite(conn) // the outbox's chats wait for the next login
	c.pending = map[packet.Cmd][]*call{}
}

func (c *Client) current() *wire.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *Client) setState(s State) {
	c.mu.Lock()
	c.state = s
	c.mu.Unlock()
}

// State returns where the session is.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// User returns the logged-in user as the last login answer described it.
func (c *Client) User() packet.User {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.user
}

// Close ends the session: the connection is closed, nothing reconnects, waiting requests
// fail with ErrClosed, and a last Closed event follows. It waits for the client's
// goroutines (a dial in progress ends within Options.Wire.Timeout).
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.closeCh)
	conn, connecting := c.conn, c.connecting
	c.mu.Unlock()
	c.failOutbox(func(id string) error { return fmt.Errorf("%w: chat %s was not acknowledged", ErrClosed, id) })
	if connecting != nil {
		connecting.Close()
	}
	if conn != nil {
		_ = conn.Send(packet.CmdCloseReq, packet.Close{})
		conn.Close()
	}
	c.wg.Wait()
	return nil
}

// timeout is how long a request may wait: the context's deadline or RequestTimeout.
func (c *Client) timeout(ctx context.Context) time.Duration {
	d := c.opts.RequestTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		d = max(time.Until(dl), time.Millisecond)
	}
	return d
}

// request sends cmd and waits for its answer, which it returns when its code is a
// success (else an *Error). key names the chat or recall the answer will name.
func (c *Client) request(ctx context.Context, cmd packet.Cmd, body any, key string) (*wire.Response, error) {
	cl := &call{key: key, ch: make(chan result, 1)}
	resp := cmd.Response()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	conn := c.conn
	if conn == nil {
		c.mu.Unlock()
		return nil, ErrNotConnected
	}
	// Sending under the lock keeps each queue in the order of the requests on the wire.
	if err := conn.Send(cmd, body); err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("timgw: send cmd %d: %w", cmd, err)
	}
	c.pending[resp] = append(c.pending[resp], cl)
	c.mu.Unlock()

	t := time.NewTimer(c.timeout(ctx))
	defer t.Stop()
	var res result
	select {
	case res = <-cl.ch:
	case <-ctx.Done():
		return nil, ctx.Err() // the call stays queued: its late answer is consumed
	case <-t.C:
		return nil, fmt.Errorf("timgw: no answer to cmd %d within %v", cmd, c.opts.RequestTimeout)
	}
	if res.err != nil {
		return nil, res.err
	}
	if !okCodes[res.r.Code] {
		return res.r, &Error{Code: res.r.Code, Msg: res.r.Msg, Response: res.r}
	}
	return res.r, nil
}

// settle hands an answer of cmd to the call named key, or else to the oldest; false when
// none waits.
func (c *Client) settle(cmd packet.Cmd, r *wire.Response, key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.pending[cmd]
	if len(q) == 0 {
		return false
	}
	i := 0
	if key != "" {
		for j, cl := range q {
			if cl.key == key {
				i = j
				break
			}
		}
	}
	cl := q[i]
	c.pending[cmd] = append(q[:i:i], q[i+1:]...)
	if cl.item != nil {
		c.answerItem(cl.item, r)
		return true
	}
	cl.ch <- result{r: r}
	return true
}

// waiting reports whether a call for cmd named key waits, and whether any does.
func (c *Client) waiting(cmd packet.Cmd, key string) (named, any bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.pending[cmd] {
		if key != "" && cl.key == key {
			named = true
		}
	}
	return named, len(c.pending[cmd]) > 0
}

// remember records a message id; false when it was seen before.
func (c *Client) remember(id string) bool {
	if id == "" {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[id] {
		return false
	}
	c.seen[id] = true
	c.seenOrder = append(c.seenOrder, id)
	if len(c.seenOrder) > maxSeen {
		delete(c.seen, c.seenOrder[0])
		c.seenOrder = c.seenOrder[1:]
	}
	return true
}

// newID returns a message id for a chat sent without one.
func (c *Client) newID() string {
	c.mu.Lock()
	c.idSeq++
	n := c.idSeq
	c.mu.Unlock()
	return fmt.Sprintf("%s%d-%d", c.idPrefix, time.Now().UnixMilli(), n)
}
