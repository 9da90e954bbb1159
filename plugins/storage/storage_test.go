package storage

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestConvKeys(t *testing.T) {
	cases := []struct {
		name        string
		conv        string
		group, a, b string
		ok          bool
	}{
		{"private", PrivateConv("bob", "alice"), "", "alice", "bob", true},
		{"private, same order", PrivateConv("alice", "bob"), "", "alice", "bob", true},
		{"private with colons", PrivateConv("a:1", "b:22"), "", "a:1", "b:22", true},
		{"self", PrivateConv("me", "me"), "", "me", "me", true},
		{"group", GroupConv("room:1"), "room:1", "", "", true},
		{"empty", "", "", "", "", false},
		{"empty group", "g:", "", "", "", false},
		{"unknown kind", "x:1:ab", "", "", "", false},
		{"no length", "p::ab", "", "", "", false},
		{"leading zero", "p:01:ab", "", "", "", false},
		{"plus sign", "p:+1:ab", "", "", "", false},
		{"too long", "p:5:ab", "", "", "", false},
		{"empty second", "p:2:ab", "", "", "", false},
		{"unordered", "p:1:ba", "", "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, a, b, err := ParseConv(tc.conv)
			if (err == nil) != tc.ok || g != tc.group || a != tc.a || b != tc.b {
				t.Errorf("ParseConv(%q) = %q, %q, %q, %v", tc.conv, g, a, b, err)
			}
		})
	}
	if !Member(PrivateConv("x", "y"), "y") || Member(PrivateConv("x", "y"), "z") || Member(GroupConv("g"), "g") {
		t.Errorf("Member")
	}
}

// FuzzParseConv checks that ParseConv accepts exactly the keys PrivateConv and GroupConv
// make, whatever bytes it is given.
func FuzzParseConv(f *testing.F) {
	for _, s := range []string{PrivateConv("alice", "bob"), GroupConv("g"), "p:1:", "p:999999:x", "g:", "p:1:aa", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, conv string) {
		g, a, b, err := ParseConv(conv)
		if err != nil {
			return
		}
		if g != "" {
			if GroupConv(g) != conv {
				t.Fatalf("group %q does not rebuild %q", g, conv)
			}
			return
		}
		if PrivateConv(a, b) != conv || a > b || a == "" || b == "" {
			t.Fatalf("users %q, %q do not rebuild %q", a, b, conv)
		}
	})
}

func TestStatusRoundTrip(t *testing.T) {
	cases := []struct {
		err  error
		code codes.Code
		want error
	}{
		{ErrNotFound, codes.NotFound, ErrNotFound},
		{ErrRecallWindow, codes.FailedPrecondition, ErrRecallWindow},
		{ErrInvalid, codes.InvalidArgument, ErrInvalid},
		{context.DeadlineExceeded, codes.DeadlineExceeded, context.DeadlineExceeded},
		{errors.New("disk full"), codes.Internal, nil},
	}
	for _, tc := range cases {
		st := toStatus(tc.err)
		if status.Code(st) != tc.code {
			t.Errorf("toStatus(%v): code %v, want %v", tc.err, status.Code(st), tc.code)
		}
		back := fromStatus("op", st)
		if tc.want != nil && !errors.Is(back, tc.want) {
			t.Errorf("fromStatus(toStatus(%v)) = %v, want it to wrap %v", tc.err, back, tc.want)
		}
	}
	if err := fromStatus("op", status.Error(codes.Unavailable, "gone")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Unavailable: %v", err)
	}
	if toStatus(nil) != nil || fromStatus("op", nil) != nil {
		t.Errorf("nil errors")
	}
}
