package router

import "testing"

func TestOpenGroupsMatch(t *testing.T) {
	tests := []struct {
		patterns []string
		group    string
		want     bool
	}{
		{nil, "100", false},
		{[]string{"100"}, "100", true},
		{[]string{"100"}, "1000", false},
		{[]string{"lobby-*"}, "lobby-eu", true},
		{[]string{"lobby-*"}, "lobby-", true},
		{[]string{"lobby-*"}, "xlobby-eu", false},
		{[]string{"*-public"}, "games/chess-public", true},
		{[]string{"*-public"}, "chess-private", false},
		{[]string{"a*b*c"}, "a-x-b-y-c", true},
		{[]string{"a*b*c"}, "a-x-c-b", false},
		{[]string{"a*b*c"}, "abc", true},
		{[]string{"ab*ba"}, "aba", false}, // prefix and suffix must not overlap
		{[]string{"*"}, "anything/at all", true},
		{[]string{"x", "y*"}, "yes", true},
	}
	for _, tt := range tests {
		if got := NewOpenGroups(tt.patterns).Match(tt.group); got != tt.want {
			t.Errorf("%q.Match(%q) = %v, want %v", tt.patterns, tt.group, got, tt.want)
		}
	}
}
