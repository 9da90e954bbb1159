package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"github.com/cloudwego/hertz/pkg/app"

	"github.com/timgw/timgw/core/packet"
)

// keySet holds the SHA-256 digests of the accepted API keys. Comparing digests of equal
// length, always against every key, keeps the check constant-time in the key's
// content and length.
type keySet struct {
	digests [][sha256.Size]byte
}

func newKeySet(keys []string) *keySet {
	ks := &keySet{}
	for _, k := range keys {
		if k = strings.TrimSpace(k); k != "" {
			ks.digests = append(ks.digests, sha256.Sum256([]byte(k)))
		}
	}
	return ks
}

// match reports whether key is one of the set.
func (ks *keySet) match(key string) bool {
	if key == "" {
		return false
	}
	d := sha256.Sum256([]byte(key))
	found := 0
	for i := range ks.digests {
		found |= subtle.ConstantTimeCompare(d[:], ks.digests[i][:])
	}
	return found == 1
}

// presentedKey returns the API key a request carries: header X-API-Key, else
// Authorization: Bearer, else (when allowQuery) the api_key query parameter.
func presentedKey(c *app.RequestContext, allowQuery bool) string {
	if k := strings.TrimSpace(string(c.GetHeader("X-API-Key"))); k != "" {
		return k
	}
	if auth := strings.TrimSpace(string(c.GetHeader("Authorization"))); auth != "" {
		scheme, token, ok := strings.Cut(auth, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(token)
		}
	}
	if allowQuery {
		return c.Query("api_key")
	}
	return ""
}

// requireKey is the middleware that refuses requests without a valid API key (401).
// allowQuery also accepts ?api_key= (J-IM paths only: query strings end up in logs).
func (s *Server) requireKey(allowQuery bool) app.HandlerFunc {
	return func(ctx context.Context, c *app.RequestContext) {
		key := presentedKey(c, allowQuery)
		ks := s.keys.Load()
		var msg string
		switch {
		case len(ks.digests) == 0:
			msg = "no API key is configured: the HTTP API is disabled (set api.keys)"
		case key == "":
			msg = "missing API key: send header \"X-API-Key: <key>\" or \"Authorization: Bearer <key>\""
		case !ks.match(key):
			msg = "invalid API key"
		default:
			c.Next(ctx)
			return
		}
		c.Response.Header.Set("WWW-Authenticate", `Bearer realm="timgw"`)
		s.fail(c, &apiError{Code: packet.StatusAuthFailed, Msg: msg})
		c.Abort()
	}
}
