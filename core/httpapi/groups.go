package httpapi

import (
	"context"
	"strconv"

	"github.com/cloudwego/hertz/pkg/app"

	"github.com/timgw/timgw/core/packet"
)

// groupInfo is the data of GET /api/v1/groups/{id}/members.
type groupInfo struct {
	GroupID string   `json:"groupId"`
	Total   int      `json:"total"`
	Members []string `json:"members"`
}

// groupMembers is GET /api/v1/groups/{id}/members.
func (s *Server) groupMembers(_ context.Context, c *app.RequestContext) {
	id, e := pathID(c, "group")
	if e != nil {
		s.fail(c, e)
		return
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	members, err := s.gw.GroupMembers(ctx, id)
	if err != nil {
		s.fail(c, gatewayError("group "+strconv.Quote(id), err))
		return
	}
	if members == nil {
		members = []string{}
	}
	s.ok(c, packet.StatusOK, groupInfo{GroupID: id, Total: len(members), Members: members})
}
