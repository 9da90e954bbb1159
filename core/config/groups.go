package config

import (
	"fmt"
	"slices"
	"strings"
)

// Groups configures how groups behave as they grow.
type Groups struct {
	// NoticeMaxMembers is the largest group whose members are told of every join and
	// leave (cmd 9 and cmd 10), as t-im does. Above it the notices are not sent, so that
	// filling a group of N costs O(N), not O(N²): N joins would otherwise send N²/2
	// notices. 0: always send them (t-im's behaviour at any size). Default 200.
	NoticeMaxMembers int `yaml:"notice_max_members"`
	// MembersPageSize is the page of GET /api/v1/groups/{id}/members when the request
	// gives no limit, and the largest limit it accepts. Default 1000.
	MembersPageSize int `yaml:"members_page_size"`
	// Open lists group id patterns (* matches any run of characters) whose groups accept
	// chats from users who did not join them, as t-im does: the chat reaches the members.
	// Every other group answers such a chat 10025 (not a member). Default: none.
	Open []string `yaml:"open"`
}

// Equal reports whether g and o configure the same.
func (g Groups) Equal(o Groups) bool {
	return g.NoticeMaxMembers == o.NoticeMaxMembers && g.MembersPageSize == o.MembersPageSize && slices.Equal(g.Open, o.Open)
}

// DefaultGroups returns the groups section's defaults.
func DefaultGroups() Groups { return Groups{NoticeMaxMembers: 200, MembersPageSize: 1000} }

func (g Groups) validate() []error {
	var errs []error
	if g.NoticeMaxMembers < 0 {
		errs = append(errs, fmt.Errorf("groups.notice_max_members: %d is negative (0 sends notices at any size)", g.NoticeMaxMembers))
	}
	if g.MembersPageSize < 1 || g.MembersPageSize > 100000 {
		errs = append(errs, fmt.Errorf("groups.members_page_size: %d is not between 1 and 100000", g.MembersPageSize))
	}
	for i, p := range g.Open {
		if strings.TrimSpace(p) == "" {
			errs = append(errs, fmt.Errorf("groups.open[%d]: an empty pattern", i))
		}
	}
	return errs
}
