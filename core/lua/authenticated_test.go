package lua

import (
	"context"
	"testing"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/packet"
)

func TestAuthenticatedHook(t *testing.T) {
	env := newEnv(t, map[string]string{"a.lua": `
return {authenticated = function(req)
  if req.userId == "bad9" then return "reject", "banned: " .. req.userId, tim.FORBIDDEN end
  if req.claims and req.claims.role == "guest" then return "reject", "guests may not log in" end
  if req.by == "auth_hook" and #req.groups > 0 then return "reject", "hook " .. req.groups[1] end
  if req.nick == "x" then return "accept" end
  if req.source == "auth" and req.claims == nil then return "maybe" end
end}`,
		"b.lua": `return {authenticated = function(req) return "reject", "b ran" end}`,
	}, func(c *config.Hooks) { c.Auth.Policy = config.PolicyFailOpen })
	claims := func(role string) map[string]any { return map[string]any{"sub": "u", "role": role} }
	for _, tt := range []struct {
		name string
		req  hook.AuthenticatedRequest
		want hook.AuthReply
	}{
		{"verified id refused", hook.AuthenticatedRequest{Source: hook.SourceAuth, UserID: "bad9", Claims: claims("member"), By: hook.ByAuthenticator},
			hook.AuthReply{Decision: hook.AuthReject, Code: packet.StatusForbidden, Message: "banned: bad9", Script: "a.lua"}},
		{"claims refused, default code", hook.AuthenticatedRequest{Source: hook.SourceLogin, UserID: "u", Claims: claims("guest"), By: hook.ByAuthenticator},
			hook.AuthReply{Decision: hook.AuthReject, Code: packet.StatusLoginFailed, Message: "guests may not log in", Script: "a.lua"}},
		{"groups and by", hook.AuthenticatedRequest{Source: hook.SourceAuth, UserID: "u", Groups: []string{"g1"}, By: hook.ByAuthHook},
			hook.AuthReply{Decision: hook.AuthReject, Code: packet.StatusAuthFailed, Message: "hook g1", Script: "a.lua"}},
		{"accept skips the rest", hook.AuthenticatedRequest{Source: hook.SourceLogin, UserID: "u", Nick: "x", Claims: claims("member")},
			hook.AuthReply{Decision: hook.AuthAccept, UserID: "u", Script: "a.lua"}},
		{"no opinion: next script", hook.AuthenticatedRequest{Source: hook.SourceLogin, UserID: "u", Claims: claims("member")},
			hook.AuthReply{Decision: hook.AuthReject, Code: packet.StatusLoginFailed, Message: "b ran", Script: "b.lua"}},
		{"bad decision fails open", hook.AuthenticatedRequest{Source: hook.SourceAuth, UserID: "u"},
			hook.AuthReply{Decision: hook.AuthReject, Code: packet.StatusAuthFailed, Message: "b ran", Script: "b.lua"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := env.rt.Authenticated(context.Background(), &tt.req)
			if got.Decision != tt.want.Decision || got.Code != tt.want.Code || got.Message != tt.want.Message ||
				got.Script != tt.want.Script || got.UserID != tt.want.UserID {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAuthenticatedHookFailClosed(t *testing.T) {
	env := newEnv(t, map[string]string{"a.lua": `return {authenticated = function(req) error("boom") end}`}, nil)
	got := env.rt.Authenticated(context.Background(), &hook.AuthenticatedRequest{Source: hook.SourceLogin, UserID: "u"})
	want := hook.AuthReply{Decision: hook.AuthReject, Code: packet.StatusLoginFailed, Message: "authentication unavailable: authenticated hook failed", Script: "a.lua"}
	if got.Decision != want.Decision || got.Code != want.Code || got.Message != want.Message || got.Script != want.Script {
		t.Errorf("fail_closed (the auth policy): got %+v, want %+v", got, want)
	}
}
