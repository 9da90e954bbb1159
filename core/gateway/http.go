package gateway

import (
	"context"
	"fmt"

	"github.com/timgw/timgw/core/httpapi"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
	"github.com/timgw/timgw/core/session"
)

// HTTP adapts the gateway to what the HTTP API needs.
type HTTP struct{ g *Gateway }

var (
	_ httpapi.Gateway     = HTTP{}
	_ httpapi.StatsSource = HTTP{}
	_ httpapi.Recaller    = HTTP{}
)

// HTTP returns the gateway's face for the HTTP API.
func (g *Gateway) HTTP() HTTP { return HTTP{g} }

// Send implements httpapi.Gateway.
func (h HTTP) Send(ctx context.Context, from string, chat *packet.Chat) *packet.Response {
	return h.g.chat(ctx, router.Sender{UserID: from}, "http", "", chat)
}

// Users implements httpapi.Gateway.
func (h HTTP) Users(_ context.Context, p httpapi.Presence) ([]packet.User, error) {
	return h.g.reg.Users(session.Filter(p)), nil
}

// Connections implements httpapi.Gateway.
func (h HTTP) Connections(_ context.Context, userID string) (int, error) {
	return h.g.reg.ConnCount(userID), nil
}

// GroupMembers implements httpapi.Gateway.
func (h HTTP) GroupMembers(_ context.Context, groupID string) ([]string, error) {
	m, ok := h.g.reg.Members(groupID, nil)
	if !ok {
		return nil, fmt.Errorf("group %q: %w", groupID, httpapi.ErrNotFound)
	}
	return m, nil
}

// Kick implements httpapi.Gateway.
func (h HTTP) Kick(_ context.Context, userID, reason string) (int, error) {
	conns := h.g.reg.Conns(userID, nil)
	if reason == "" {
		reason = "kicked by an administrator"
	}
	for _, c := range conns {
		c.Close(reason)
	}
	return len(conns), nil
}

// Stats implements httpapi.StatsSource.
func (h HTTP) Stats(context.Context) httpapi.Stats {
	online, byProto := h.g.reg.Counts()
	return httpapi.Stats{Connections: byProto, OnlineUsers: online}
}
