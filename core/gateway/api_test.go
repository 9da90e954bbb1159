package gateway

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/timgw/timgw/core/auth"
	"github.com/timgw/timgw/core/packet"
)

// TestLeaveAll: the user leaves every group of the registry; the members of the groups
// within groups.notice_max_members (counted before the leave) get one cmd 10 naming the
// user, the user's own connections get nothing.
func TestLeaveAll(t *testing.T) {
	tests := []struct {
		name       string
		noticeMax  int
		groups     []string // bob's; carol is in "small" too, and "big" has dave as well
		wantLeft   []string
		wantNotice []string // groups carol is told of (cmd 10 about bob)
	}{
		{"no groups", 0, nil, []string{}, nil},
		{"notices at any size", 0, []string{"small", "big"}, []string{"big", "small"}, []string{"big", "small"}},
		{"big group over the notice limit", 2, []string{"small", "big"}, []string{"big", "small"}, []string{"small"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(auth.Open{})
			r.g.SetNoticeMaxMembers(tt.noticeMax)
			bc, _ := r.login(t, 1, "bob")
			cc, _ := r.login(t, 2, "carol")
			r.reg.Join("small", "", "carol")
			r.reg.Join("big", "", "carol")
			r.reg.Join("big", "", "dave")
			for _, g := range tt.groups {
				r.reg.Join(g, "", "bob")
			}
			cc.take()

			left := r.g.LeaveAll(context.Background(), "bob", false)
			if left == nil || !slices.Equal(left, tt.wantLeft) {
				t.Errorf("LeaveAll: %#v, want %#v", left, tt.wantLeft)
			}
			if got := r.reg.Groups("bob"); len(got) != 0 {
				t.Errorf("bob's groups after LeaveAll: %v, want none", got)
			}
			var told []string
			for _, p := range cc.take() {
				if p.Cmd != packet.CmdExitGroupNotify {
					t.Errorf("carol got cmd %d: %s", p.Cmd, p.Body)
					continue
				}
				var n packet.GroupNotice
				if err := json.Unmarshal(p.Body, &n); err != nil || n.User.UserID != "bob" {
					t.Errorf("carol's cmd 10: %s (%v), want one about bob", p.Body, err)
				}
				told = append(told, n.Group.GroupID)
			}
			slices.Sort(told)
			if !slices.Equal(told, tt.wantNotice) {
				t.Errorf("carol told (cmd 10) of bob leaving %v, want %v", told, tt.wantNotice)
			}
			if got := bc.take(); len(got) != 0 {
				t.Errorf("bob's connection got %d packets, want none", len(got))
			}
		})
	}
}
