package httpapi

import (
	"bytes"
	"strconv"
)

// bodyWatch follows the HTTP/1.1 requests read from one connection just far enough to
// know where each request's headers end and where its body ends (by Content-Length or
// chunked framing). The connection uses it to bound the time a body may take
// (Options.BodyTimeout) separately from the time a whole request may take, and to
// refuse a declared over-limit body before anything of it is read: hertz reads the
// start of a body before it calls a handler, so a handler alone cannot do either.
//
// It never changes the bytes; it only looks at them. When the framing makes no sense
// (a bad chunk size) it stops following the connection (state wLost): hertz refuses
// such a request and closes the connection anyway.
type bodyWatch struct {
	state   uint8
	left    int64  // body or chunk bytes still to come
	line    []byte // the line being read (headers, chunk sizes, trailers), capped
	cl      int64  // Content-Length of the request whose headers are being read; -1 none
	chunked bool   // Transfer-Encoding: chunked seen in those headers
	started bool   // the request line was seen
}

// bodyWatch states.
const (
	wHeaders   uint8 = iota // request line and headers
	wBody                   // fixed-length body: left bytes to come
	wChunkSize              // a chunk-size line
	wChunkData              // chunk data: left bytes to come
	wChunkEnd               // the CRLF after chunk data
	wTrailer                // trailer lines after the last chunk
	wLost                   // framing not understood: no longer followed
)

// maxWatchLine caps the bytes of one line kept: only the start of a line matters
// (a header's name and a short value, a chunk size).
const maxWatchLine = 256

// watchEvents is what one feed saw.
type watchEvents struct {
	bodyStarted bool  // headers ended and a body follows (its clock starts)
	bodyEnded   bool  // the body in progress ended (or the request has none)
	declared    int64 // the largest Content-Length declared by headers that ended
}

// inBody reports whether a request body is being read.
func (w *bodyWatch) inBody() bool {
	return w.state != wHeaders && w.state != wLost
}

// feed follows p, the next bytes read from the connection.
func (w *bodyWatch) feed(p []byte) watchEvents {
	ev := watchEvents{declared: -1}
	for len(p) > 0 && w.state != wLost {
		switch w.state {
		case wBody, wChunkData:
			n := min(int64(len(p)), w.left)
			w.left -= n
			p = p[n:]
			if w.left == 0 {
				if w.state == wBody {
					w.state = wHeaders
					ev.bodyEnded = true
				} else {
					w.state = wChunkEnd
				}
			}
		default:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				w.keep(p)
				return ev
			}
			w.keep(p[:i])
			p = p[i+1:]
			line := bytes.TrimSuffix(w.line, []byte("\r"))
			w.line = w.line[:0]
			w.endLine(line, &ev)
		}
	}
	return ev
}

func (w *bodyWatch) keep(b []byte) {
	if room := maxWatchLine - len(w.line); room > 0 {
		w.line = append(w.line, b[:min(len(b), room)]...)
	}
}

// endLine handles one complete line (without its line end) in a line state.
func (w *bodyWatch) endLine(line []byte, ev *watchEvents) {
	switch w.state {
	case wHeaders:
		switch {
		case len(line) == 0 && !w.started:
			// Empty lines before a request line are ignored (RFC 9112 section 2.2).
		case len(line) == 0:
			w.endHeaders(ev)
		case !w.started:
			w.started, w.cl, w.chunked = true, -1, false
		default:
			w.header(line)
		}
	case wChunkSize:
		size, ok := chunkSize(line)
		switch {
		case !ok:
			w.state = wLost
		case size == 0:
			w.state = wTrailer
		default:
			w.state, w.left = wChunkData, size
		}
	case wChunkEnd:
		if len(line) != 0 {
			w.state = wLost
			return
		}
		w.state = wChunkSize
	case wTrailer:
		if len(line) == 0 {
			w.state = wHeaders
			ev.bodyEnded = true
		}
	}
}

// header notes a header line of interest.
func (w *bodyWatch) header(line []byte) {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return
	}
	value = bytes.TrimSpace(value)
	switch {
	case bytes.EqualFold(bytes.TrimSpace(name), []byte("Content-Length")):
		if n, err := strconv.ParseInt(string(value), 10, 64); err == nil && n > w.cl {
			w.cl = n
		} else if err != nil && len(value) > 0 {
			w.cl = 1<<63 - 1 // too long to parse: over any limit
		}
	case bytes.EqualFold(bytes.TrimSpace(name), []byte("Transfer-Encoding")):
		if bytes.Contains(bytes.ToLower(value), []byte("chunked")) {
			w.chunked = true
		}
	}
}

// endHeaders moves to the body the headers announced, if any.
func (w *bodyWatch) endHeaders(ev *watchEvents) {
	w.started = false
	ev.declared = max(ev.declared, w.cl)
	switch {
	case w.chunked:
		w.state = wChunkSize
		ev.bodyStarted = true
	case w.cl > 0:
		w.state, w.left = wBody, w.cl
		ev.bodyStarted = true
	default:
		ev.bodyEnded = true
	}
}

// chunkSize parses a chunk-size line: hexadecimal digits, optionally followed by
// extensions after ';'.
func chunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimSpace(line)
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(line), 16, 64)
	return n, err == nil && n >= 0
}
