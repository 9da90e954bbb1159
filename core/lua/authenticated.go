package lua

import (
	"context"
	"fmt"

	lua "github.com/yuin/gopher-lua"

	"github.com/timgw/timgw/core/hook"
)

// Authenticated runs the authenticated scripts: function(req) with req = {source,
// userId, nick, avatar, groups, claims, by, protocol, addr}, after a login was accepted
// (userId is verified: the token's subject in jwt mode). They return nil or "pass"
// (next script), "accept" (skip the rest) or "reject", message [, code]. The point
// follows the auth point's policy and order.
func (r *Runtime) Authenticated(ctx context.Context, req *hook.AuthenticatedRequest) hook.AuthReply {
	g := r.gen.Load()
	if len(g.chains[pAuthenticated]) == 0 || req == nil {
		return hook.AuthReply{}
	}
	return call(ctx, r, g, pAuthenticated, func() hook.AuthReply { return failAuth(g, pAuthenticated, req.Source, "") }, authDecision,
		func(v *vm) hook.AuthReply { return r.authenticated(ctx, g, v, req) })
}

// authenticated runs the authenticated chain on v.
func (r *Runtime) authenticated(ctx context.Context, g *generation, v *vm, req *hook.AuthenticatedRequest) hook.AuthReply {
	t := v.reqs[pAuthenticated]
	for k := range g.chains[pAuthenticated] {
		v.setAuthenticated(t, req) // for every script: claims an earlier one changed are fresh
		s := v.script(pAuthenticated, k)
		res, err := v.run(ctx, pAuthenticated, k, t, nil)
		var d string
		if err == nil {
			d, err = decision(res[0])
		}
		if err == nil && d != "" && d != "pass" && d != "accept" && d != "reject" {
			err = fmt.Errorf("unknown decision %q (want nil, \"pass\", \"accept\" or \"reject\")", d)
		}
		if err != nil {
			r.failed(pAuthenticated, s, err)
			if g.failClosed[pAuthenticated] {
				return failAuth(g, pAuthenticated, req.Source, s.name)
			}
			continue
		}
		switch d {
		case "accept":
			return hook.AuthReply{Decision: hook.AuthAccept, UserID: req.UserID, Script: s.name}
		case "reject":
			rep := rejectReply(req.Source, res)
			rep.Script = s.name
			return rep
		}
	}
	return hook.AuthReply{}
}

// setAuthenticated fills the request table of an authenticated call.
func (v *vm) setAuthenticated(t *lua.LTable, req *hook.AuthenticatedRequest) {
	L := v.L
	setStrings(t, "source", req.Source, "userId", req.UserID, "nick", req.Nick, "avatar", req.Avatar,
		"by", req.By, "protocol", req.Protocol, "addr", req.Addr)
	groups := L.CreateTable(len(req.Groups), 0)
	for _, gid := range req.Groups {
		groups.Append(lua.LString(gid))
	}
	t.RawSetString("groups", groups)
	var claims lua.LValue = lua.LNil
	if req.Claims != nil {
		claims = toLua(L, req.Claims)
	}
	t.RawSetString("claims", claims)
}
