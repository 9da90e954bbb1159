package app

import (
	"context"
	"fmt"

	"github.com/timgw/timgw/core/gateway"
	"github.com/timgw/timgw/core/httpapi"
	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/session"
	"github.com/timgw/timgw/core/transport"
)

// Directory is the presence view the HTTP API and the command layer read: this node's
// registry, or in a cluster the merged view of every node. Called from many goroutines.
type Directory interface {
	Users(f session.Filter) []packet.User
	ConnCount(userID string) int
	Online(userID string) bool
}

var _ Directory = (*session.Registry)(nil)

// apiGateway adapts the command layer, the presence view and the group table to what
// the HTTP API needs. It is wired here, where the parts meet, so that neither the
// command layer nor the HTTP API knows the other.
type apiGateway struct {
	gw    *gateway.Gateway
	reg   *session.Registry // group membership (replicated to every node in a cluster)
	dir   Directory
	stats func() httpapi.Stats
	// pageSize is groups.members_page_size, read per request (reloadable).
	pageSize func() int
}

var (
	_ httpapi.Gateway     = apiGateway{}
	_ httpapi.StatsSource = apiGateway{}
	_ httpapi.Recaller    = apiGateway{}
)

// Send implements httpapi.Gateway.
func (a apiGateway) Send(ctx context.Context, from string, chat *packet.Chat) *packet.Response {
	return a.gw.Send(ctx, from, chat)
}

// Users implements httpapi.Gateway.
func (a apiGateway) Users(_ context.Context, p httpapi.Presence) ([]packet.User, error) {
	return a.dir.Users(session.Filter(p)), nil
}

// Connections implements httpapi.Gateway.
func (a apiGateway) Connections(_ context.Context, userID string) (int, error) {
	return a.dir.ConnCount(userID), nil
}

// GroupMembers implements httpapi.Gateway.
func (a apiGateway) GroupMembers(_ context.Context, groupID, after string, limit int) (httpapi.MembersPage, error) {
	size := a.pageSize()
	if limit <= 0 || limit > size {
		limit = size
	}
	m, total, next, ok := a.reg.MembersPage(groupID, after, limit)
	if !ok {
		return httpapi.MembersPage{}, fmt.Errorf("group %q: %w", groupID, httpapi.ErrNotFound)
	}
	return httpapi.MembersPage{Members: m, Total: total, Next: next}, nil
}

// Kick implements httpapi.Gateway.
func (a apiGateway) Kick(ctx context.Context, userID, reason string) (int, error) {
	return a.gw.Kick(ctx, userID, reason), nil
}

// Recall implements httpapi.Recaller.
func (a apiGateway) Recall(ctx context.Context, from, id, to, groupID, by string) *packet.Response {
	return a.gw.Recall(ctx, from, id, to, groupID, by)
}

// Stats implements httpapi.StatsSource.
func (a apiGateway) Stats(context.Context) httpapi.Stats { return a.stats() }

// transportHandler adapts the command layer to the transport's Handler: the transport
// hands *transport.Conn, the command layer takes its own small Conn interface.
type transportHandler struct{ gw *gateway.Gateway }

var _ transport.Handler = transportHandler{}

func (h transportHandler) Opened(c *transport.Conn)                  { h.gw.Opened(c) }
func (h transportHandler) Packet(c *transport.Conn, p packet.Packet) { h.gw.Packet(c, p) }
func (h transportHandler) Closed(c *transport.Conn, reason string)   { h.gw.Closed(c, reason) }
