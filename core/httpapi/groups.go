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
	// Next is the ?after= of the next page; left out on the last page.
	Next string `json:"next,omitempty"`
}

// groupMembers is GET /api/v1/groups/{id}/members[?limit=N][&after=ID]: one page of
// members in byte order of their ids.
func (s *Server) groupMembers(_ context.Context, c *app.RequestContext) {
	id, e := pathID(c, "group")
	if e != nil {
		s.fail(c, e)
		return
	}
	limit := 0
	if v := string(c.Query("limit")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.fail(c, badBody("query parameter limit: %q is not a positive integer", v))
			return
		}
		limit = n
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	page, err := s.gw.GroupMembers(ctx, id, string(c.Query("after")), limit)
	if err != nil {
		s.fail(c, gatewayError("group "+strconv.Quote(id), err))
		return
	}
	if page.Members == nil {
		page.Members = []string{}
	}
	s.ok(c, packet.StatusOK, groupInfo{GroupID: id, Total: page.Total, Members: page.Members, Next: page.Next})
}
