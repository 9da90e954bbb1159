package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"

	"github.com/cloudwego/hertz/pkg/app"

	"github.com/timgw/timgw/core/packet"
)

// reasonKick is the reason given to Gateway.Kick by the /api/v1 kick endpoints.
const reasonKick = "kicked by the HTTP API"

// usersPage is the data of GET /api/v1/users.
type usersPage struct {
	Status string        `json:"status"`
	Total  int           `json:"total"`
	Offset int           `json:"offset"`
	Users  []packet.User `json:"users"`
}

// listUsers is GET /api/v1/users?status=online|offline|all&offset=&limit=.
func (s *Server) listUsers(_ context.Context, c *app.RequestContext) {
	var p Presence
	var code packet.Status
	switch st := c.Query("status"); st {
	case "", "online":
		p, code = PresenceOnline, packet.StatusGetOnlineOK
	case "offline":
		p, code = PresenceOffline, packet.StatusGetOfflineOK
	case "all":
		p, code = PresenceAll, packet.StatusGetUserOK
	default:
		s.fail(c, badBody("query parameter status: %q is not one of online, offline, all", st))
		return
	}
	offset, e := queryInt(c, "offset")
	if e != nil {
		s.fail(c, e)
		return
	}
	limit, e := queryInt(c, "limit")
	if e != nil {
		s.fail(c, e)
		return
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	users, err := s.gw.Users(ctx, p)
	if err != nil {
		s.fail(c, gatewayError(p.String()+" users", err))
		return
	}
	page := usersPage{Status: p.String(), Total: len(users), Offset: offset}
	users = users[min(offset, len(users)):]
	if limit > 0 && limit < len(users) {
		users = users[:limit]
	}
	page.Users = users
	if page.Users == nil {
		page.Users = []packet.User{}
	}
	s.ok(c, code, page)
}

// userInfo is the data of GET /api/v1/users/{id}.
type userInfo struct {
	UserID      string `json:"userId"`
	Online      bool   `json:"online"`
	Connections int    `json:"connections"`
}

// connections asks the gateway how many connections user id has; on an error it answers
// the request and reports false.
func (s *Server) connections(c *app.RequestContext, id string) (int, bool) {
	ctx, cancel := s.callCtx()
	defer cancel()
	n, err := s.gw.Connections(ctx, id)
	if err != nil {
		s.fail(c, gatewayError("user "+strconv.Quote(id), err))
		return 0, false
	}
	return n, true
}

// getUser is GET /api/v1/users/{id}: whether the user is online, on how many
// connections.
func (s *Server) getUser(_ context.Context, c *app.RequestContext) {
	id, e := pathID(c, "user")
	if e != nil {
		s.fail(c, e)
		return
	}
	n, ok := s.connections(c, id)
	if !ok {
		return
	}
	s.ok(c, packet.StatusGetUserOK, userInfo{UserID: id, Online: n > 0, Connections: n})
}

// kickResult is the data of a kick.
type kickResult struct {
	UserID string `json:"userId"`
	Closed int    `json:"closed"`
}

// kickUser is POST /api/v1/users/{id}/kick and DELETE /api/v1/users/{id}/connections:
// closes all of the user's connections. The reason comes from ?reason= or a body
// {"reason": "..."}.
func (s *Server) kickUser(_ context.Context, c *app.RequestContext) {
	id, e := pathID(c, "user")
	if e != nil {
		s.fail(c, e)
		return
	}
	reason := c.Query("reason")
	body, e := s.readBody(c)
	if e != nil {
		s.fail(c, e)
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		var req struct {
			Reason string `json:"reason"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.fail(c, describeJSONError(body, err))
			return
		}
		if req.Reason != "" {
			reason = req.Reason
		}
	}
	if reason == "" {
		reason = reasonKick
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	n, err := s.gw.Kick(ctx, id, reason)
	if err != nil {
		s.fail(c, gatewayError("user "+strconv.Quote(id), err))
		return
	}
	s.ok(c, packet.StatusCloseOK, kickResult{UserID: id, Closed: n})
}
