package lua

import (
	"context"
	"errors"
	"fmt"

	lua "github.com/yuin/gopher-lua"

	"github.com/timgw/timgw/core/hook"
)

// Auth runs the auth scripts: function(req) with req = {source, userId, password,
// token, protocol, addr}. They return nil or "pass" (no opinion, next script),
// "accept", user (user is a user id or a table {userId, nick, avatar, groups}), or
// "reject", message [, code].
func (r *Runtime) Auth(ctx context.Context, req *hook.AuthRequest) (rep hook.AuthReply) {
	g := r.gen.Load()
	if len(g.chains[pAuth]) == 0 || req == nil {
		return rep
	}
	return call(ctx, r, g, pAuth, func() hook.AuthReply { return rejectAuth(g, req, "") }, authDecision,
		func(v *vm) hook.AuthReply { return r.auth(ctx, g, v, req) })
}

// authDecision indexes decisionNames[pAuth].
func authDecision(rep hook.AuthReply) int { return int(rep.Decision) }

// auth runs the auth chain on v.
func (r *Runtime) auth(ctx context.Context, g *generation, v *vm, req *hook.AuthRequest) hook.AuthReply {
	t := v.reqs[pAuth]
	for k := range g.chains[pAuth] {
		// Set for every script: none sees what an earlier one wrote into the table.
		setStrings(t, "source", req.Source, "userId", req.UserID, "password", req.Password, "token", req.Token,
			"protocol", req.Protocol, "addr", req.Addr)
		s := v.script(pAuth, k)
		res, err := v.run(ctx, pAuth, k, t, nil)
		var rep hook.AuthReply
		if err == nil {
			rep, err = authReply(req, res)
		}
		if err != nil {
			r.failed(pAuth, s, err)
			if g.failClosed[pAuth] {
				return rejectAuth(g, req, s.name)
			}
			continue
		}
		if rep.Decision != hook.AuthPass {
			rep.Script = s.name
			return rep
		}
	}
	return hook.AuthReply{}
}

// setStrings sets the string fields of a request table from key, value pairs.
func setStrings(t *lua.LTable, kv ...string) {
	for i := 0; i+1 < len(kv); i += 2 {
		t.RawSetString(kv[i], lua.LString(kv[i+1]))
	}
}

// authReply interprets the results of an auth hook.
func authReply(req *hook.AuthRequest, res results) (hook.AuthReply, error) {
	d, err := decision(res[0])
	if err != nil {
		return hook.AuthReply{}, err
	}
	switch d {
	case "", "pass":
		return hook.AuthReply{}, nil
	case "reject":
		return rejectReply(req.Source, res), nil
	case "accept":
		rep := hook.AuthReply{Decision: hook.AuthAccept}
		switch u := res[1].(type) {
		case lua.LString:
			rep.UserID = string(u)
		case *lua.LTable:
			rep.UserID = lua.LVAsString(u.RawGetString("userId"))
			rep.Nick = lua.LVAsString(u.RawGetString("nick"))
			rep.Avatar = lua.LVAsString(u.RawGetString("avatar"))
			groups, err := stringList(u.RawGetString("groups"))
			if err != nil {
				return hook.AuthReply{}, fmt.Errorf("accept: groups: %w", err)
			}
			rep.Groups = groups
		case *lua.LNilType:
		default:
			return hook.AuthReply{}, fmt.Errorf("accept: user is a %s, want a user id or a table", u.Type())
		}
		if rep.UserID == "" {
			rep.UserID = req.UserID
		}
		if rep.UserID == "" {
			return hook.AuthReply{}, errors.New("accept without a userId")
		}
		return rep, nil
	}
	return hook.AuthReply{}, fmt.Errorf("unknown decision %q (want nil, \"pass\", \"accept\" or \"reject\")", d)
}

// rejectReply is a "reject", message [, code] result of an auth or authenticated hook.
func rejectReply(source string, res results) hook.AuthReply {
	return hook.AuthReply{
		Decision: hook.AuthReject,
		Message:  text(res[1], "authentication rejected"),
		Code:     status(res[2], hook.FailureStatus(source)),
	}
}

func rejectAuth(g *generation, req *hook.AuthRequest, script string) hook.AuthReply {
	return failAuth(g, pAuth, req.Source, script)
}

// failAuth is the reply of a failed auth or authenticated call: a rejection under
// fail_closed, no opinion under fail_open.
func failAuth(g *generation, p point, source, script string) hook.AuthReply {
	if !g.failClosed[p] {
		return hook.AuthReply{}
	}
	return hook.AuthReply{
		Decision: hook.AuthReject,
		Code:     hook.FailureStatus(source),
		Message:  fmt.Sprintf("authentication unavailable: %s hook failed", p),
		Script:   script,
	}
}
