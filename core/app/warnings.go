package app

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/httpapi"
)

// risk is one unsafe setting a gateway starts with, logged once at start.
type risk struct {
	msg  string
	args []any
}

// risks lists what in cfg lets anyone who reaches a port do too much: development keys
// (accepted only from loopback clients, but known to everyone), and open auth on a port
// reachable from beyond the machine. One entry per risk.
func risks(cfg *config.Config) []risk {
	var out []risk
	for _, k := range []struct {
		setting, env string
		keys         []string
	}{{"api.keys", "TIMGW_API_KEY", cfg.API.Keys}, {"admin.keys", "TIMGW_ADMIN_KEY", cfg.Admin.Keys}} {
		var dev []string
		for _, key := range k.keys {
			if httpapi.IsDevelopmentKey(strings.TrimSpace(key)) {
				dev = append(dev, key)
			}
		}
		if len(dev) > 0 {
			out = append(out, risk{
				msg:  fmt.Sprintf("%s holds a development key, accepted only from loopback clients: set %s or %s for production", k.setting, k.env, k.setting),
				args: []any{"setting", k.setting, "keys", dev},
			})
		}
	}
	if cfg.Auth.Mode == "open" {
		var wide []string
		for _, addr := range listenAddrs(cfg) {
			if !loopbackOnly(addr) {
				wide = append(wide, addr)
			}
		}
		if len(wide) > 0 {
			out = append(out, risk{
				msg:  "auth.mode is open on addresses beyond loopback: anyone who reaches them logs in as any user; use auth.mode jwt, or listen on 127.0.0.1",
				args: []any{"setting", "auth.mode", "addresses", wide},
			})
		}
	}
	return out
}

// listenAddrs are every address the gateway listens on for clients.
func listenAddrs(cfg *config.Config) []string {
	addrs := []string{cfg.Listen}
	for _, l := range cfg.Listeners {
		addrs = append(addrs, l.Address)
	}
	for _, l := range codecListens(cfg) {
		addrs = append(addrs, l.addr)
	}
	return addrs
}

// loopbackOnly reports whether a listen address (host:port) binds loopback only: an
// empty host, a wildcard or a host name other than localhost does not.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// warnRisks logs each risk of cfg once, as a warning.
func warnRisks(log *slog.Logger, cfg *config.Config) {
	for _, r := range risks(cfg) {
		log.Warn(r.msg, r.args...)
	}
}
