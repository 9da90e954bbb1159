package httpapi

import (
	"slices"
	"strings"
	"testing"

	"github.com/timgw/timgw/core/packet"
)

// TestIndex: the 404 of an unknown path points at GET /api/v1/, and that answers (with
// no key) with the registered endpoints, sorted by path, not the admin ones.
func TestIndex(t *testing.T) {
	ts := startServer(t, newFakeGateway(), Options{})
	r := ts.do(t, "GET", "/api/v1/nothing", nil, "")
	check(t, r, 404, int(packet.StatusNotFound), "GET /api/v1/ lists the endpoints")

	r = ts.do(t, "GET", "/api/v1/", nil, "")
	check(t, r, 200, int(packet.StatusOK), "ok")
	raw, _ := r.data()["endpoints"].([]any)
	var got []string
	for _, e := range raw {
		s, _ := e.(string)
		got = append(got, s)
	}
	for _, want := range []string{"POST /api/v1/messages", "GET /api/v1/users/:id", "GET /api/v1/stats",
		"POST /api/message/send", "GET /api/user/online"} {
		if !slices.Contains(got, want) {
			t.Errorf("index lacks %q: %q", want, got)
		}
	}
	for _, e := range got {
		if !strings.Contains(e, " /api/") || strings.HasPrefix(e, "HEAD ") {
			t.Errorf("index lists %q", e)
		}
	}
	if !slices.IsSortedFunc(got, func(a, b string) int {
		return strings.Compare(a[strings.IndexByte(a, ' '):], b[strings.IndexByte(b, ' '):])
	}) {
		t.Errorf("index not sorted by path: %q", got)
	}
}
