package httpapi

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/protocol"

	"github.com/timgw/timgw/core/packet"
)

// drainLimit is how much of an oversized body is read and discarded so that the
// connection stays usable and the client reads the 413; beyond it the connection is
// closed instead.
const drainLimit = 256 << 10

// readBody returns the request body, at most MaxBodyBytes of it (413, code 10026, when
// there is more), and valid UTF-8 (400, code 10036, when it is not: every API body is
// JSON).
func (s *Server) readBody(c *app.RequestContext) ([]byte, *apiError) {
	limit := s.opts.MaxBodyBytes
	tooLarge := &apiError{Code: packet.StatusTooLarge,
		Msg: fmt.Sprintf("request body is over the limit of %d bytes", limit)}
	cl := c.Request.Header.ContentLength()
	if cl > limit {
		s.abandonBody(c, cl-limit > drainLimit)
		return nil, tooLarge
	}
	if !c.Request.IsBodyStream() {
		b := c.Request.Body()
		if len(b) > limit {
			return nil, tooLarge
		}
		if e := checkUTF8(b); e != nil {
			return nil, e
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(c.RequestBodyStream(), int64(limit)+1))
	if err != nil {
		c.SetConnectionClose()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, badBody("request body incomplete after %s (limits.body_timeout): %d bytes read",
				time.Duration(s.bodyTimeout.Load()), len(b))
		}
		return nil, badBody("cannot read the request body: %v", err)
	}
	if len(b) > limit {
		s.abandonBody(c, false)
		return nil, tooLarge
	}
	if e := checkUTF8(b); e != nil {
		return nil, e
	}
	return b, nil
}

// abandonBody disposes of the unread rest of an oversized body: it reads and discards
// up to drainLimit bytes so that the client, still sending, gets to read the answer
// and may reuse the connection; a longer (or, with closeNow, a declared too long) body
// closes the connection after the answer instead.
func (s *Server) abandonBody(c *app.RequestContext, closeNow bool) {
	if !closeNow && c.Request.IsBodyStream() {
		_, err := io.CopyN(io.Discard, c.RequestBodyStream(), drainLimit+1)
		if errors.Is(err, io.EOF) {
			return
		}
	}
	c.SetConnectionClose()
	// Drop hertz's body stream: it would read the rest of the body before closing.
	c.Request.SetBodyStream(protocol.NoBody, 0)
}

func asAPIError(err error) *apiError {
	var e *apiError
	if errors.As(err, &e) {
		return e
	}
	return badBody("%v", err)
}

// queryInt reads an optional non-negative integer query parameter (0 when absent).
func queryInt(c *app.RequestContext, name string) (int, *apiError) {
	v := c.Query(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, badBody("query parameter %s: %q is not a non-negative integer", name, v)
	}
	return n, nil
}

// pathID returns the :id of the route, or an error when it is empty.
func pathID(c *app.RequestContext, what string) (string, *apiError) {
	id := c.Param("id")
	if strings.TrimSpace(id) == "" {
		return "", badBody("%s id: must not be empty", what)
	}
	return id, nil
}
