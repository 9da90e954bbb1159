package httpapi

import "testing"

func TestBodyWatch(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		inBody   bool  // after all of in
		started  bool  // a body started
		ended    bool  // a body (or a bodiless request) ended
		declared int64 // largest Content-Length seen (-1: none)
	}{
		{name: "no body", in: "GET / HTTP/1.1\r\nHost: x\r\n\r\n", ended: true, declared: -1},
		{name: "headers incomplete", in: "POST / HTTP/1.1\r\nContent-Length: 5\r\n", declared: -1},
		{name: "body pending", in: "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", inBody: true, started: true, declared: 5},
		{name: "body complete", in: "POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\nabcde", started: true, ended: true, declared: 5},
		{name: "pipelined second body pending", in: "POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\naPOST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n",
			inBody: true, started: true, ended: true, declared: 9},
		{name: "bare LF lines", in: "POST / HTTP/1.1\nContent-Length: 2\n\nab", started: true, ended: true, declared: 2},
		{name: "leading empty line", in: "\r\nPOST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n", inBody: true, started: true, declared: 3},
		{name: "huge declared", in: "POST / HTTP/1.1\r\nContent-Length: 104857600\r\n\r\n", inBody: true, started: true, declared: 100 << 20},
		{name: "unparsable length", in: "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", inBody: true, started: true, declared: 1<<63 - 1},
		{name: "chunked pending", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", inBody: true, started: true, declared: -1},
		{name: "chunked complete", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nabcde\r\n0\r\nT: v\r\n\r\n", started: true, ended: true, declared: -1},
		{name: "chunked bad size", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", started: true, declared: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Byte by byte and all at once must agree.
			for _, split := range []bool{false, true} {
				var w bodyWatch
				var started, ended bool
				declared := int64(-1)
				feed := func(p []byte) {
					ev := w.feed(p)
					started, ended = started || ev.bodyStarted, ended || ev.bodyEnded
					declared = max(declared, ev.declared)
				}
				if split {
					for i := range len(tc.in) {
						feed([]byte(tc.in[i : i+1]))
					}
				} else {
					feed([]byte(tc.in))
				}
				if w.inBody() != tc.inBody || started != tc.started || ended != tc.ended || declared != tc.declared {
					t.Errorf("split %v: inBody %v started %v ended %v declared %d, want %v %v %v %d",
						split, w.inBody(), started, ended, declared, tc.inBody, tc.started, tc.ended, tc.declared)
				}
			}
		})
	}
}

// FuzzBodyWatch checks that bodyWatch reaches the same state however the bytes are
// split across reads (a client chooses the split), and never panics.
func FuzzBodyWatch(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n"), uint8(1))
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), uint8(2))
	f.Add([]byte("\nPOST / HTTP/1.1\nContent-Length: 99999999999999999999\n\n"), uint8(7))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		var whole, split bodyWatch
		a := whole.feed(in)
		var b watchEvents
		b.declared = -1
		n := max(int(step), 1)
		for i := 0; i < len(in); i += n {
			ev := split.feed(in[i:min(i+n, len(in))])
			b.bodyStarted = b.bodyStarted || ev.bodyStarted
			b.bodyEnded = b.bodyEnded || ev.bodyEnded
			b.declared = max(b.declared, ev.declared)
		}
		if whole.state != split.state || whole.left != split.left || whole.inBody() != split.inBody() || a != b {
			t.Fatalf("step %d: whole %+v %+v, split %+v %+v", n, whole, a, split, b)
		}
	})
}
