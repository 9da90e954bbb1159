package timgw

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/sdk/go/timgw/wire"
)

// DefaultMaxOutbox is the default bound of the outbox (Options.MaxOutbox).
const DefaultMaxOutbox = 1000

// ErrOutboxFull is the error of a Send made while Options.MaxOutbox chats wait for their
// answers: the chat was not queued.
var ErrOutboxFull = errors.New("timgw: outbox full")

// UnackedError is the error of a Send whose context or RequestTimeout ended before the
// chat's answer. The chat has left the outbox and is not resent by the client. When
// Written, it was written to the gateway, which may have accepted it: sending it again
// with the same ID is safe (a stored chat is answered with Duplicate set and not
// delivered again). LastRefusal is a retryable refusal (10030, 10034) it got, if any.
type UnackedError struct {
	ID          string
	Written     bool
	LastRefusal *Error
	Err         error // the context's error, or the timeout
}

func (e *UnackedError) Error() string {
	s := fmt.Sprintf("timgw: chat %s not acknowledged: %v", e.ID, e.Err)
	if e.Written {
		s += " (written: the gateway may have accepted it; resend with this id to know)"
	}
	if e.LastRefusal != nil {
		s += "; last answer: " + e.LastRefusal.Error()
	}
	return s
}

func (e *UnackedError) Unwrap() []error {
	if e.LastRefusal != nil {
		return []error{e.Err, e.LastRefusal}
	}
	return []error{e.Err}
}

// outItem is a chat in the outbox: taken by Send and not answered finally yet.
type outItem struct {
	id    string
	chat  packet.Chat
	ch    chan result // the final answer or error, sent once (done)
	conn  *wire.Conn  // the connection it is written on; nil: to be written
	sent  bool        // written at least once
	retry *Error      // the last retryable refusal
	done  bool        // answered, failed, or given up by Send: out of the outbox
}

// retryable reports whether a chat refused with code is sent again after a reconnect:
// storage unavailable (10030) and server busy or shutting down (10034) did not take it.
func retryable(code packet.Status) bool {
	return code == packet.StatusStorageUnavailable || code == packet.StatusServerBusy
}

// sendOutbox queues m (whose ID is set) in the outbox, writes it when the client is
// connected, and waits for its final answer.
func (c *Client) sendOutbox(ctx context.Context, m packet.Chat) (*wire.Response, error) {
	it := &outItem{id: string(m.ID), chat: m, ch: make(chan result, 1)}
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return nil, ErrClosed
	case c.state == StateClosed:
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: the session ended", ErrNotConnected)
	case len(c.outbox) >= c.opts.MaxOutbox:
		n := len(c.outbox)
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %d chats wait for their answers (Options.MaxOutbox)", ErrOutboxFull, n)
	}
	c.outbox = append(c.outbox, it)
	if c.conn != nil {
		c.writeItem(c.conn, it)
	}
	c.mu.Unlock()

	// The context's deadline, or RequestTimeout when that is earlier.
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.opts.RequestTimeout {
		wctx, cancel = context.WithTimeout(ctx, c.opts.RequestTimeout)
	}
	defer cancel()
	var res result
	var cause error
	select {
	case res = <-it.ch:
	case <-wctx.Done():
		if cause = ctx.Err(); cause == nil {
			cause = fmt.Errorf("no answer within %v (RequestTimeout): %w", c.opts.RequestTimeout, context.DeadlineExceeded)
		}
	}
	if cause != nil {
		c.mu.Lock()
		if it.done { // answered meanwhile: the answer is in it.ch
			c.mu.Unlock()
			res = <-it.ch
		} else {
			// Out of the outbox; if written, its call stays queued so that its late
			// answer is consumed.
			c.removeItem(it)
			e := &UnackedError{ID: it.id, Written: it.sent, LastRefusal: it.retry, Err: cause}
			c.mu.Unlock()
			return nil, e
		}
	}
	if res.err != nil {
		return nil, res.err
	}
	if !okCodes[res.r.Code] {
		return res.r, &Error{Code: res.r.Code, Msg: res.r.Msg, Response: res.r}
	}
	return res.r, nil
}

// writeItem writes it on conn and queues its answer's call; c.mu is held. A write that
// fails leaves it to be written after the reconnection that follows.
func (c *Client) writeItem(conn *wire.Conn, it *outItem) {
	if err := conn.Send(packet.CmdChatReq, it.chat); err != nil {
		return
	}
	it.conn, it.sent = conn, true
	resp := packet.CmdChatResp
	c.pending[resp] = append(c.pending[resp], &call{key: it.id, item: it})
}

// resendOutbox writes, in their order, the chats of the outbox not written on conn,
// which has just logged in; c.mu is held, so they go before any new chat.
func (c *Client) resendOutbox(conn *wire.Conn) {
	for _, it := range c.outbox {
		if it.conn == nil {
			c.writeItem(conn, it)
		}
	}
}

// answerItem takes the answer r to it; c.mu is held. A retryable refusal keeps it in the
// outbox, to be written again after the next login.
func (c *Client) answerItem(it *outItem, r *wire.Response) {
	if it.done { // given up by Send: the late answer is consumed
		return
	}
	if retryable(r.Code) {
		it.conn = nil
		it.retry = &Error{Code: r.Code, Msg: r.Msg, Response: r}
		return
	}
	c.removeItem(it)
	it.ch <- result{r: r}
}

// unwrite marks the outbox's chats written on conn, which was lost, to be written again.
func (c *Client) unwrite(conn *wire.Conn) {
	for _, it := range c.outbox {
		if it.conn == conn {
			it.conn = nil
		}
	}
}

// failOutbox ends every chat of the outbox with err.
func (c *Client) failOutbox(err func(id string) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, it := range c.outbox {
		it.done = true
		it.ch <- result{err: err(it.id)}
	}
	c.outbox = nil
}

// removeItem takes it out of the outbox; c.mu is held.
func (c *Client) removeItem(it *outItem) {
	it.done = true
	if i := slices.Index(c.outbox, it); i >= 0 {
		c.outbox = slices.Delete(c.outbox, i, i+1)
	}
}

// Outbox returns the ids of the chats waiting for their answers, in send order.
func (c *Client) Outbox() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, len(c.outbox))
	for i, it := range c.outbox {
		ids[i] = it.id
	}
	return ids
}
