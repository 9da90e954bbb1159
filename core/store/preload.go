package store

import (
	"context"
	"fmt"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/session"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// Preload fills a fresh registry with what the store remembers: every group with its
// members, and every known user (offline), so that after a restart group chats reach
// members who have not logged in again and cmd 17 lists offline users. It returns how
// many groups and users it loaded.
func (s *Service) Preload(ctx context.Context, reg *session.Registry) (groups, users int, err error) {
	c, err := s.get(ctx)
	if err != nil {
		return 0, 0, err
	}
	for after := ""; ; {
		res, err := c.ListGroups(ctx, &pb.ListRequest{After: after, Limit: 1000})
		if err != nil {
			return groups, users, fmt.Errorf("preload groups: %w", err)
		}
		for _, g := range res.Groups {
			for _, m := range g.Members {
				reg.Join(g.GroupId, g.Name, m)
			}
			groups++
			after = g.GroupId
		}
		if !res.More || len(res.Groups) == 0 {
			break
		}
	}
	// The registry learns of a user through a connection; a placeholder connection bound
	// and unbound at once leaves the user known, offline, with its profile.
	for after := ""; ; {
		res, err := c.ListUsers(ctx, &pb.ListRequest{After: after, Limit: 1000})
		if err != nil {
			return groups, users, fmt.Errorf("preload users: %w", err)
		}
		for _, u := range res.Users {
			reg.Bind(u.UserId, placeholder{}, session.Profile{Nick: u.Nick, Avatar: u.Avatar})
			reg.Unbind(u.UserId, placeholder{})
			users++
			after = u.UserId
		}
		if !res.More || len(res.Users) == 0 {
			break
		}
	}
	return groups, users, nil
}

// placeholder is the connection Preload binds for a moment.
type placeholder struct{}

var _ session.Conn = placeholder{}

// placeholderID is an id no real connection has (they count up from 1).
const placeholderID = ^uint64(0)

func (placeholder) ID() uint64               { return placeholderID }
func (placeholder) Send(packet.Packet) error { return nil }
func (placeholder) Close(string)             {}
func (placeholder) Protocol() string         { return "storage" }
