package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/netip"
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
		case RefuseDevelopmentKey(key, c.RemoteAddr().String()):
			msg = DevelopmentKeyRefusal("api.keys (or TIMGW_API_KEY)", c.RemoteAddr().String())
		default:
			c.Next(ctx)
			return
		}
		c.Response.Header.Set("WWW-Authenticate", `Bearer realm="timgw"`)
		s.fail(c, &apiError{Code: packet.StatusAuthFailed, Msg: msg})
		c.Abort()
	}
}

// developmentKeys are the keys of the shipped configuration (conf/timgw.yaml), printed in
// the README for everyone to read. They are accepted only from loopback clients.
var developmentKeys = []string{"dev-api-key", "dev-admin-key"}

// IsDevelopmentKey reports whether key is one of the shipped development keys
// (dev-api-key, dev-admin-key), whichever setting it is configured in.
func IsDevelopmentKey(key string) bool {
	for _, k := range developmentKeys {
		if key == k {
			return true
		}
	}
	return false
}

// IsLoopback reports whether remote, an address as host:port or an IP, is a loopback
// address (127.0.0.0/8, ::1, or IPv4-mapped 127.x). What does not parse is not.
func IsLoopback(remote string) bool {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().IsLoopback()
	}
	a, err := netip.ParseAddr(remote)
	return err == nil && a.Unmap().IsLoopback()
}

// RefuseDevelopmentKey reports whether a request from remote that presents a valid key
// must still be refused: the key is a development key and remote is not loopback.
func RefuseDevelopmentKey(key, remote string) bool {
	return IsDevelopmentKey(key) && !IsLoopback(remote)
}

// DevelopmentKeyRefusal is the message of a development key refused from remote; setting
// names where the operator configures a key of their own.
func DevelopmentKeyRefusal(setting, remote string) string {
	host := remote
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		host = ap.Addr().Unmap().String()
	}
	return fmt.Sprintf("development keys (dev-api-key, dev-admin-key) are accepted only from loopback clients, "+
		"not from %s: configure %s with a key of your own", host, setting)
}
