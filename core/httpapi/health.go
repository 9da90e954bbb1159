package httpapi

import (
	"context"
	"net/http"

	"github.com/cloudwego/hertz/pkg/app"

	"github.com/timgw/timgw/core/packet"
)

func (s *Server) health(_ context.Context, c *app.RequestContext) {
	if s.closing.Load() {
		// From the signal on: the drain, then the goodbye (README "Running in production").
		s.writeJSON(c, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	if s.opts.Degraded != nil {
		if why := s.opts.Degraded(); why != "" {
			s.writeJSON(c, http.StatusOK, map[string]string{"status": "degraded", "reason": why})
			return
		}
	}
	s.writeJSON(c, http.StatusOK, map[string]string{"status": "ok"})
}

// getStats is GET /api/v1/stats, when the gateway implements StatsSource.
func (s *Server) getStats(_ context.Context, c *app.RequestContext) {
	if s.stats == nil {
		s.fail(c, &apiError{Code: packet.StatusNotFound, Msg: "stats are not available"})
		return
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	s.ok(c, packet.StatusOK, s.stats.Stats(ctx))
}
