package webhook

import (
	"container/heap"
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
)

// Options configure a Dispatcher.
type Options struct {
	// Config is the webhooks section.
	Config config.Webhooks
	// Dir is the queue directory; "": a new temporary directory, removed by Close (the
	// events do not survive a restart).
	Dir string
	// Node is the node id events carry ("" without a cluster).
	Node string
	// Logger receives delivery failures and drops.
	Logger *slog.Logger
	// Registerer gets the webhook metrics (nil: none).
	Registerer prometheus.Registerer
	// Client sends the POSTs (nil: a client of its own).
	Client *http.Client
	// Buffer is the capacity of Emit's channel (0: 4096).
	Buffer int
	// Workers is how many POSTs run at once (0: 8).
	Workers int
	// Hooks edit or suppress each event before it is queued (nil: none); they run on
	// the spool goroutine, never in Emit's caller.
	Hooks Editor
}

// Editor is the hooks' event point (hook.Runner has it): it adds fields to an event or
// suppresses it.
type Editor interface {
	Event(ctx context.Context, req *hook.EventRequest) hook.EventReply
}

var _ Editor = hook.Noop{}

// Dispatcher queues events and delivers them to the configured endpoints. Its methods
// are safe for concurrent use.
type Dispatcher struct {
	log    *slog.Logger
	node   string
	client *http.Client
	in     chan Event
	idBase string
	idSeq  atomic.Uint64
	wants  atomic.Pointer[map[string]bool]
	m      *metrics
	hooks  Editor

	dir     string
	tempDir bool
	openMu  sync.Mutex // serialises Prepare
	spool   *spool     // nil until the first endpoint is configured; set under openMu and mu

	mu        sync.Mutex
	cfg       config.Webhooks // resolved
	endpoints map[string]config.WebhookEndpoint
	items     *list.List // of *item, oldest first
	health    map[string]*endpointHealth
	tasks     taskHeap
	stopping  bool

	delivered, failed, dropped atomic.Uint64
	suppressed                 atomic.Uint64 // events the event hook dropped
	dropLogged                 atomic.Int64  // when drop last logged, unix ns

	wake       chan struct{}
	work       chan task
	stop       chan struct{} // closed by Close: the scheduler and the workers end
	spoolStop  chan struct{} // closed by Close: the spool goroutine flushes and ends
	spoolDone  chan struct{}
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	closeOnce  sync.Once
	workersNum int
}

// item is one pending event and its delivery state per endpoint URL.
type item struct {
	ev   Event
	body []byte
	seg  *segment
	el   *list.Element
	eps  map[string]*attempt
	gone bool // settled: delivered everywhere, given up, or dropped
}

// endpointHealth is an endpoint's run of failures. After a failure the endpoint cools
// down (the backoff of its run of failures): no event is sent to it until then, so that an
// endpoint that is down gets a probe per backoff period, not every pending event, and
// does not hold every worker. A success ends the run.
type endpointHealth struct {
	fails int
	until time.Time
}

// attempt is an event's delivery state at one endpoint.
type attempt struct {
	n      int  // failed attempts so far
	queued bool // a task is in the heap
	busy   bool // a worker is posting it
	done   bool // delivered, or given up
}

// New returns a running dispatcher. With endpoints configured it opens the queue
// directory and reloads the events a previous run left there; without, it opens
// nothing until SetConfig brings endpoints (Prepare opens the queue first).
func New(o Options) (*Dispatcher, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if o.Buffer <= 0 {
		o.Buffer = 4096
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Hooks == nil {
		o.Hooks = hook.Noop{}
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{log: o.Logger.With("component", "webhook"), node: o.Node, client: o.Client,
		in: make(chan Event, o.Buffer), idBase: hex.EncodeToString(b[:]), dir: o.Dir, items: list.New(),
		endpoints: map[string]config.WebhookEndpoint{}, health: map[string]*endpointHealth{}, wake: make(chan struct{}, 1), work: make(chan task),
		stop: make(chan struct{}), spoolStop: make(chan struct{}), spoolDone: make(chan struct{}),
		ctx: ctx, cancel: cancel, workersNum: o.Workers, hooks: o.Hooks}
	d.wants.Store(&map[string]bool{})
	m, err := newMetrics(o.Registerer, d)
	if err != nil {
		cancel()
		return nil, err
	}
	d.m = m
	if o.Config.Enabled() {
		if err := d.Prepare(o.Config); err != nil {
			cancel()
			return nil, err
		}
	}
	d.SetConfig(o.Config)
	go d.spoolLoop()
	d.wg.Add(1 + o.Workers)
	go d.schedule()
	for range o.Workers {
		go d.worker()
	}
	return d, nil
}

// Prepare opens the queue directory and loads its pending events, once, when cfg has
// endpoints: the part of a configuration change that can fail. Call SetConfig next.
func (d *Dispatcher) Prepare(cfg config.Webhooks) error {
	if !cfg.Enabled() {
		return nil
	}
	d.openMu.Lock()
	defer d.openMu.Unlock()
	if d.spool != nil {
		return nil
	}
	dir := d.dir
	if dir == "" {
		t, err := os.MkdirTemp("", "timgw-webhooks-")
		if err != nil {
			return fmt.Errorf("webhook queue: %w", err)
		}
		dir, d.tempDir = t, true
	}
	sp, err := openSpool(dir)
	if err != nil {
		return err
	}
	evs, bad, err := sp.load()
	if err != nil {
		return err
	}
	if bad > 0 {
		d.log.Warn("webhook queue: unreadable events skipped", "dir", dir, "count", bad)
	}
	if len(evs) > 0 {
		d.log.Info("webhook queue: pending events reloaded", "dir", dir, "count", len(evs))
	}
	d.mu.Lock()
	d.dir, d.spool = dir, sp // written under both locks: read under either
	for _, s := range evs {
		d.addLocked(s.ev, s.body, s.seg)
	}
	d.mu.Unlock() // SetConfig, next, applies queue.max_events
	return nil
}

// SetConfig applies a webhooks section: endpoints, secrets, retries and the queue
// bound change for pending events too (configuration reload). The queue directory is
// the one of the start. An endpoint added gets the events still pending.
func (d *Dispatcher) SetConfig(cfg config.Webhooks) {
	cfg = cfg.Resolved()
	wants := map[string]bool{}
	eps := make(map[string]config.WebhookEndpoint, len(cfg.Endpoints))
	for _, e := range cfg.Endpoints {
		eps[e.URL] = e
		for _, t := range Types {
			if e.Wants(t) {
				wants[t] = true
			}
		}
	}
	d.mu.Lock()
	d.cfg, d.endpoints = cfg, eps
	for url := range d.health {
		if _, ok := eps[url]; !ok {
			delete(d.health, url)
		}
	}
	for e := d.items.Front(); e != nil; {
		next := e.Next()
		it := e.Value.(*item)
		d.scheduleLocked(it, time.Now())
		d.settleLocked(it)
		e = next
	}
	d.boundLocked()
	d.mu.Unlock()
	d.wants.Store(&wants)
	d.poke()
}

// Wants reports whether an endpoint subscribes to events of type typ: callers skip
// building events nobody wants.
func (d *Dispatcher) Wants(typ string) bool { return (*d.wants.Load())[typ] }

// Emit queues e for delivery, setting its ID, Time and Node. It never blocks: when the
// queue's channel is full the event is dropped and counted.
func (d *Dispatcher) Emit(e Event) {
	e.ID = d.idBase + "-" + strconv.FormatUint(d.idSeq.Add(1), 36)
	if e.Time == 0 {
		e.Time = time.Now().UnixMilli()
	}
	e.Node = d.node
	d.m.event(e.Type)
	select {
	case d.in <- e:
	default:
		d.drop(e.ID, "the event channel is full")
	}
}

// drop counts an event that is given up before delivery. It logs at most once a second
// (an overload drops many).
func (d *Dispatcher) drop(id, why string) {
	n := d.dropped.Add(1)
	d.m.result(resultDropped)
	now := time.Now().UnixNano()
	if last := d.dropLogged.Load(); now-last >= int64(time.Second) && d.dropLogged.CompareAndSwap(last, now) {
		d.log.Warn("webhook event dropped", "event", id, "reason", why, "dropped_total", n)
	}
}

// spoolLoop persists emitted events in batches and hands them to the scheduler; on
// Close it flushes what is left in the channel.
func (d *Dispatcher) spoolLoop() {
	defer close(d.spoolDone)
	batch := make([]Event, 0, maxBatch)
	for {
		select {
		case e := <-d.in:
			d.persist(d.fill(append(batch[:0], e)))
		case <-d.spoolStop:
			for {
				if batch = d.fill(batch[:0]); len(batch) == 0 {
					return
				}
				d.persist(batch)
			}
		}
	}
}

// maxBatch is the most events one segment holds.
const maxBatch = 1000

// fill appends the events waiting in the channel to batch, up to maxBatch, without
// waiting for more.
func (d *Dispatcher) fill(batch []Event) []Event {
	for len(batch) < maxBatch {
		select {
		case e := <-d.in:
			batch = append(batch, e)
		default:
			return batch
		}
	}
	return batch
}

// persist writes a batch as one segment and adds its events to the pending ones. When
// the write fails the events are still delivered, from memory.
func (d *Dispatcher) persist(batch []Event) {
	bodies := make([][]byte, 0, len(batch))
	evs := make([]Event, 0, len(batch))
	for _, e := range batch {
		if !d.edit(&e) {
			continue
		}
		b, err := json.Marshal(e)
		if err != nil {
			d.log.Error("webhook event not encoded", "event", e.ID, "err", err)
			continue
		}
		bodies, evs = append(bodies, b), append(evs, e)
	}
	d.openMu.Lock()
	sp := d.spool
	d.openMu.Unlock()
	if sp == nil || len(bodies) == 0 { // no endpoint was ever configured: nobody wants them
		return
	}
	seg, err := sp.write(bodies)
	if err != nil {
		d.log.Error("webhook events not persisted: they are lost if the gateway stops before they are delivered", "count", len(bodies), "err", err)
	}
	d.mu.Lock()
	for i, e := range evs {
		d.addLocked(e, bodies[i], seg)
	}
	d.boundLocked()
	d.mu.Unlock()
	d.poke()
}

// edit runs the event hook on e once, before it is written: it adds the scripts'
// extra fields, or reports false when they suppressed it (counted).
func (d *Dispatcher) edit(e *Event) bool {
	rep := d.hooks.Event(d.ctx, eventRequest(e))
	if rep.Drop {
		d.suppressed.Add(1)
		d.m.suppress(e.Type)
		d.log.Debug("webhook event suppressed by a hook", "event", e.ID, "type", e.Type, "script", rep.Script)
		return false
	}
	if len(rep.Extra) > 0 {
		e.Extra = rep.Extra
	}
	return true
}

// eventRequest is the event hook's view of e.
func eventRequest(e *Event) *hook.EventRequest {
	req := &hook.EventRequest{Type: e.Type, ID: e.ID, Time: e.Time, Node: e.Node, User: e.User,
		OfflineUsers: e.OfflineUsers, Members: e.Members, Code: e.Code, Reason: e.Reason}
	if m := e.Message; m != nil {
		req.Message = &hook.EventMessage{ID: m.ID, From: m.From, To: m.To, GroupID: m.GroupID,
			ChatType: m.ChatType, MsgType: m.MsgType, Content: m.Content, Seq: m.Seq}
	}
	return req
}

// addLocked adds a pending event and schedules its deliveries.
func (d *Dispatcher) addLocked(e Event, body []byte, seg *segment) {
	it := &item{ev: e, body: body, seg: seg, eps: map[string]*attempt{}}
	it.el = d.items.PushBack(it)
	d.scheduleLocked(it, time.Now())
	d.settleLocked(it)
}

// boundLocked drops the oldest pending events beyond queue.max_events.
func (d *Dispatcher) boundLocked() {
	for d.items.Len() > max(d.cfg.Queue.MaxEvents, 1) {
		it := d.items.Front().Value.(*item)
		d.removeLocked(it)
		d.drop(it.ev.ID, "more than webhooks.queue.max_events events are pending")
	}
}

// scheduleLocked queues a delivery task for every endpoint that wants it and has none.
func (d *Dispatcher) scheduleLocked(it *item, at time.Time) {
	for url, ep := range d.endpoints {
		if !ep.Wants(it.ev.Type) {
			continue
		}
		a := it.eps[url]
		if a == nil {
			a = &attempt{}
			it.eps[url] = a
		}
		if a.done || a.queued || a.busy {
			continue
		}
		a.queued = true
		heap.Push(&d.tasks, task{at: at, it: it, url: url})
	}
}

// settleLocked removes it once every endpoint that wants it is done with it. With no
// endpoint at all, events wait (webhooks switched off for a while lose nothing).
func (d *Dispatcher) settleLocked(it *item) {
	if it.gone || len(d.endpoints) == 0 {
		return
	}
	for url, ep := range d.endpoints {
		if a := it.eps[url]; ep.Wants(it.ev.Type) && (a == nil || !a.done) {
			return
		}
	}
	d.removeLocked(it)
}

func (d *Dispatcher) removeLocked(it *item) {
	it.gone = true
	d.items.Remove(it.el)
	if d.spool != nil {
		if err := d.spool.release(it.seg); err != nil {
			d.log.Warn("webhook queue: delivered events not removed (they will be sent again after a restart)", "err", err)
		}
	}
}

// poke wakes the scheduler.
func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// schedule hands due tasks to the workers.
func (d *Dispatcher) schedule() {
	defer d.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		t, wait, ok := d.next()
		if ok {
			select {
			case d.work <- t:
				continue
			case <-d.stop:
				return
			}
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-d.wake:
		case <-d.stop:
			return
		}
	}
}

// next pops the next due task, or says how long until one is due.
func (d *Dispatcher) next() (task, time.Duration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.tasks.Len() > 0 {
		top := d.tasks[0]
		if wait := time.Until(top.at); wait > 0 {
			return task{}, wait, false
		}
		heap.Pop(&d.tasks)
		a := top.it.eps[top.url]
		a.queued = false
		if top.it.gone || a.done || d.deferLocked(top) {
			continue
		}
		a.busy = true
		return top, 0, true
	}
	return task{}, time.Hour, false
}

// deferLocked puts t back in the heap, for when its endpoint's cool-down ends, when the
// endpoint is cooling down; it reports whether it did.
func (d *Dispatcher) deferLocked(t task) bool {
	h := d.health[t.url]
	if h == nil || !time.Now().Before(h.until) {
		return false
	}
	t.at = h.until
	t.it.eps[t.url].queued = true
	heap.Push(&d.tasks, t)
	return true
}

// worker posts events.
func (d *Dispatcher) worker() {
	defer d.wg.Done()
	for {
		select {
		case t := <-d.work:
			d.mu.Lock()
			ep, ok := d.endpoints[t.url]
			if ok && d.deferLocked(t) { // the endpoint failed since the task was handed out
				t.it.eps[t.url].busy = false
				d.mu.Unlock()
				continue
			}
			d.mu.Unlock()
			var err error
			if ok {
				err = post(d.ctx, d.client, ep, t.it.ev.Type, t.it.ev.ID, t.it.body, time.Now())
			}
			d.finish(t, ok, err)
		case <-d.stop:
			return
		}
	}
}

// finish records the outcome of one attempt.
func (d *Dispatcher) finish(t task, configured bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a := t.it.eps[t.url]
	a.busy = false
	if t.it.gone || d.stopping {
		return // settled meanwhile (dropped), or interrupted by Close: stays on disk
	}
	if !configured { // the endpoint was removed by a reload
		d.settleLocked(t.it)
		return
	}
	h := d.health[t.url]
	if h == nil {
		h = &endpointHealth{}
		d.health[t.url] = h
	}
	if err == nil {
		h.fails, h.until = 0, time.Time{}
		a.done = true
		d.delivered.Add(1)
		d.m.result(resultDelivered)
		d.settleLocked(t.it)
		return
	}
	h.fails++
	h.until = time.Now().Add(backoff(h.fails, d.cfg.Retry.BackoffMin, d.cfg.Retry.BackoffMax, jitter()))
	a.n++
	if a.n >= d.cfg.Retry.MaxAttempts {
		a.done = true
		d.failed.Add(1)
		d.m.result(resultFailed)
		d.log.Warn("webhook event given up", "event", t.it.ev.ID, "type", t.it.ev.Type, "url", t.url, "attempts", a.n, "err", err)
		d.settleLocked(t.it)
		return
	}
	d.m.result(resultRetry)
	wait := backoff(a.n, d.cfg.Retry.BackoffMin, d.cfg.Retry.BackoffMax, jitter())
	d.log.Debug("webhook delivery failed, will retry", "event", t.it.ev.ID, "url", t.url, "attempt", a.n, "in", wait, "err", err)
	a.queued = true
	heap.Push(&d.tasks, task{at: time.Now().Add(wait), it: t.it, url: t.url})
	d.poke()
}

// Close persists the events still in the channel, stops delivering (attempts under way
// are abandoned: their events stay queued for the next start) and waits for the
// goroutines, or for ctx.
func (d *Dispatcher) Close(ctx context.Context) error {
	var err error
	d.closeOnce.Do(func() {
		close(d.spoolStop)
		select {
		case <-d.spoolDone:
		case <-ctx.Done():
			err = fmt.Errorf("webhook queue: flush: %w", ctx.Err())
		}
		d.mu.Lock()
		d.stopping = true
		d.mu.Unlock()
		close(d.stop)
		d.cancel()
		done := make(chan struct{})
		go func() { d.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = errors.Join(err, fmt.Errorf("webhook: stop: %w", ctx.Err()))
		}
		if d.tempDir {
			_ = os.RemoveAll(d.dir)
		}
	})
	return err
}

// Status is the webhooks part of /admin/status.
type Status struct {
	Endpoints int    `json:"endpoints"`
	Pending   int    `json:"pending"`
	Delivered uint64 `json:"delivered"`
	Failed    uint64 `json:"failed"`
	Dropped   uint64 `json:"dropped"`
	// Suppressed counts the events the event hook dropped.
	Suppressed uint64 `json:"suppressed"`
	Dir        string `json:"dir,omitempty"`
}

// Status reports the endpoints, the pending events and the counts since start.
func (d *Dispatcher) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Status{Endpoints: len(d.endpoints), Pending: d.items.Len(), Delivered: d.delivered.Load(),
		Failed: d.failed.Load(), Dropped: d.dropped.Load(), Suppressed: d.suppressed.Load(), Dir: d.dir}
}

// pending is the number of pending events (the timgw_webhook_pending gauge).
func (d *Dispatcher) pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.items.Len()
}

// task is a delivery of one event to one endpoint, due at a time.
type task struct {
	at  time.Time
	it  *item
	url string
}

// taskHeap orders tasks by due time.
type taskHeap []task

func (h taskHeap) Len() int           { return len(h) }
func (h taskHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h taskHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *taskHeap) Push(x any)        { *h = append(*h, x.(task)) }
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = task{}
	*h = old[:len(old)-1]
	return t
}

var _ heap.Interface = (*taskHeap)(nil)
