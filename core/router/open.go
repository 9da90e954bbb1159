package router

import "strings"

// OpenGroups are group id patterns whose groups accept chats from users who did not join
// them, as t-im does (groups.open). A pattern is a group id, or contains * wildcards that
// match any run of characters ("lobby-*", "*"). The zero value matches nothing.
type OpenGroups struct {
	patterns []string
}

// NewOpenGroups returns the policy of the given patterns.
func NewOpenGroups(patterns []string) OpenGroups {
	return OpenGroups{patterns: append([]string(nil), patterns...)}
}

// Match reports whether groupID is open.
func (o OpenGroups) Match(groupID string) bool {
	for _, p := range o.patterns {
		if globMatch(p, groupID) {
			return true
		}
	}
	return false
}

// globMatch matches s against pattern, where * matches any run of characters (including
// none) and every other character matches itself.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	first, last := parts[0], parts[len(parts)-1]
	if !strings.HasPrefix(s, first) {
		return false
	}
	s = s[len(first):]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, last)
}
