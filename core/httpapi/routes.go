package httpapi

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/app/server"
	"github.com/cloudwego/hertz/pkg/common/adaptor"
	"github.com/cloudwego/hertz/pkg/route"

	"github.com/timgw/timgw/core/packet"
)

// routes registers every endpoint on h.
func (s *Server) routes(h *server.Hertz) {
	h.Use(s.guard)
	h.NoRoute(s.notFound)
	for _, r := range s.opts.Extra {
		h.Handle(r.Method, r.Path, adaptor.HertzHandler(r.Handler))
	}
	h.NoMethod(s.methodNotAllowed)

	h.GET("/health", s.health)
	h.HEAD("/health", s.health)

	// J-IM compatibility.
	h.POST("/api/message/send", markJIM(packet.CmdChatResp), s.requireKey(true), s.jimSend)
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		h.Handle(m, "/api/user/online", markJIM(packet.CmdGetUserResp), s.requireKey(true), s.jimOnline)
		h.Handle(m, "/api/user/close", markJIM(packet.CmdCloseReq), s.requireKey(true), s.jimClose)
	}

	v1 := h.Group("/api/v1", s.requireKey(false))
	v1.POST("/messages", s.sendAsUser)
	v1.POST("/messages/system", s.sendAsSystem)
	v1.POST("/messages/recall", s.recall)
	v1.GET("/users", s.listUsers)
	v1.GET("/users/:id", s.getUser)
	v1.POST("/users/:id/kick", s.kickUser)
	v1.DELETE("/users/:id/connections", s.kickUser)
	v1.GET("/groups/:id/members", s.groupMembers)
	v1.GET("/stats", s.getStats)

	// Last: the index lists what is registered above.
	h.GET("/api/v1/", s.index(apiRoutes(h.Routes())))
}

// apiRoutes lists the API's endpoints ("METHOD /path") among routes, sorted by path.
func apiRoutes(routes route.RoutesInfo) []string {
	var out []string
	for _, r := range routes {
		if strings.HasPrefix(r.Path, "/api/") && r.Method != http.MethodHead {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		_, pa, _ := strings.Cut(a, " ")
		_, pb, _ := strings.Cut(b, " ")
		return cmp.Or(strings.Compare(pa, pb), strings.Compare(a, b))
	})
	return out
}

// index answers GET /api/v1/ (no key needed) with the endpoints, where the answers to
// unknown paths point.
func (s *Server) index(endpoints []string) app.HandlerFunc {
	data := map[string]any{"endpoints": endpoints}
	return func(_ context.Context, c *app.RequestContext) { s.ok(c, packet.StatusOK, data) }
}

// guard is the outermost middleware: it counts requests in progress for Shutdown,
// turns a panic into a 500, and writes the access log.
func (s *Server) guard(ctx context.Context, c *app.RequestContext) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in handler", "method", string(c.Method()), "path", string(c.Path()),
				"panic", r, "stack", string(debug.Stack()))
			c.Abort()
			c.Response.Reset()
			s.fail(c, &apiError{Code: packet.StatusSendFailed, Msg: "internal error"})
		}
		if s.closing.Load() {
			c.SetConnectionClose()
		}
		status := c.Response.StatusCode()
		level := slog.LevelDebug
		switch {
		case status >= 500:
			level = slog.LevelWarn
		case status >= 400:
			level = slog.LevelInfo
		}
		// The path only: a query string may carry an api_key.
		s.log.Log(ctx, level, "http request", "method", string(c.Method()), "path", string(c.Path()),
			"status", status, "duration", time.Since(start), "remote", c.RemoteAddr().String())
	}()
	c.Next(ctx)
}

// callCtx is the context of one Gateway call.
func (s *Server) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.baseCtx, s.opts.HandlerTimeout)
}

func (s *Server) notFound(_ context.Context, c *app.RequestContext) {
	s.fail(c, &apiError{Code: packet.StatusNotFound,
		Msg: fmt.Sprintf("no endpoint %s %s (GET /api/v1/ lists the endpoints)", c.Method(), c.Path())})
}

func (s *Server) methodNotAllowed(_ context.Context, c *app.RequestContext) {
	s.writeJSON(c, http.StatusMethodNotAllowed, envelope{Code: packet.StatusInvalidBody,
		Msg: fmt.Sprintf("method %s is not allowed on %s", c.Method(), c.Path())})
}
