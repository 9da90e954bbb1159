package lua

import (
	"context"
	"fmt"

	lua "github.com/yuin/gopher-lua"

	"github.com/timgw/timgw/core/hook"
)

// Connect runs the connect scripts: function(conn) with conn = {addr, protocol, tls}.
// They return nil (no opinion, next script), "allow" (allow, skip the rest) or
// "deny", reason.
func (r *Runtime) Connect(ctx context.Context, req *hook.ConnectRequest) (rep hook.ConnectReply) {
	g := r.gen.Load()
	if len(g.chains[pConnect]) == 0 || req == nil {
		return rep
	}
	return call(ctx, r, g, pConnect, func() hook.ConnectReply { return denyConnect(g, "") }, connectDecision,
		func(v *vm) hook.ConnectReply { return r.connect(ctx, g, v, req) })
}

// connectDecision indexes decisionNames[pConnect].
func connectDecision(rep hook.ConnectReply) int { return b2i(rep.Deny) }

// connect runs the connect chain on v.
func (r *Runtime) connect(ctx context.Context, g *generation, v *vm, req *hook.ConnectRequest) hook.ConnectReply {
	t := v.reqs[pConnect]
	for k := range g.chains[pConnect] {
		// Set for every script: none sees what an earlier one wrote into the table.
		setStrings(t, "addr", req.Addr, "protocol", req.Protocol)
		t.RawSetString("tls", lua.LBool(req.TLS))
		deny, reason, stop, err := allowDeny(v.run(ctx, pConnect, k, t, nil))
		s := v.script(pConnect, k)
		if err != nil {
			r.failed(pConnect, s, err)
			if g.failClosed[pConnect] {
				return denyConnect(g, s.name)
			}
			continue
		}
		if deny {
			return hook.ConnectReply{Deny: true, Reason: text(reason, "connection refused"), Script: s.name}
		}
		if stop {
			return hook.ConnectReply{Script: s.name}
		}
	}
	return hook.ConnectReply{}
}

func denyConnect(g *generation, script string) hook.ConnectReply {
	if !g.failClosed[pConnect] {
		return hook.ConnectReply{}
	}
	return hook.ConnectReply{Deny: true, Reason: "connection refused: connect hook failed", Script: script}
}

// allowDeny interprets the results of connect and join hooks.
func allowDeny(res results, err error) (deny bool, reason lua.LValue, stop bool, _ error) {
	if err != nil {
		return false, nil, false, err
	}
	d, err := decision(res[0])
	if err != nil {
		return false, nil, false, err
	}
	switch d {
	case "", "pass":
		return false, nil, false, nil
	case "allow":
		return false, nil, true, nil
	case "deny":
		return true, res[1], true, nil
	}
	return false, nil, false, fmt.Errorf("unknown decision %q (want nil, \"allow\" or \"deny\")", d)
}

// Join runs the join scripts: function(join) with join = {user, group, name,
// protocol, addr}. Results as for connect.
func (r *Runtime) Join(ctx context.Context, req *hook.JoinRequest) (rep hook.JoinReply) {
	g := r.gen.Load()
	if len(g.chains[pJoin]) == 0 || req == nil {
		return rep
	}
	return call(ctx, r, g, pJoin, func() hook.JoinReply { return denyJoin(g, "") }, joinDecision,
		func(v *vm) hook.JoinReply { return r.join(ctx, g, v, req) })
}

// joinDecision indexes decisionNames[pJoin].
func joinDecision(rep hook.JoinReply) int { return b2i(rep.Deny) }

// join runs the join chain on v.
func (r *Runtime) join(ctx context.Context, g *generation, v *vm, req *hook.JoinRequest) hook.JoinReply {
	t := v.reqs[pJoin]
	for k := range g.chains[pJoin] {
		setStrings(t, "user", req.User, "group", req.Group, "name", req.Name, "protocol", req.Protocol, "addr", req.Addr)
		deny, reason, stop, err := allowDeny(v.run(ctx, pJoin, k, t, nil))
		s := v.script(pJoin, k)
		if err != nil {
			r.failed(pJoin, s, err)
			if g.failClosed[pJoin] {
				return denyJoin(g, s.name)
			}
			continue
		}
		if deny {
			return hook.JoinReply{Deny: true, Reason: text(reason, "join refused"), Script: s.name}
		}
		if stop {
			return hook.JoinReply{Script: s.name}
		}
	}
	return hook.JoinReply{}
}

func denyJoin(g *generation, script string) hook.JoinReply {
	if !g.failClosed[pJoin] {
		return hook.JoinReply{}
	}
	return hook.JoinReply{Deny: true, Reason: "join refused: join hook failed", Script: script}
}

// Disconnect runs every disconnect script: function(ev) with ev = {user, addr,
// protocol, reason}. Results are ignored; failures are only logged.
func (r *Runtime) Disconnect(ctx context.Context, ev *hook.DisconnectEvent) {
	g := r.gen.Load()
	if len(g.chains[pDisconnect]) == 0 || ev == nil {
		return
	}
	call(ctx, r, g, pDisconnect, noReply, doneDecision, func(v *vm) struct{} { return r.disconnect(ctx, g, v, ev) })
}

func noReply() struct{}         { return struct{}{} }
func doneDecision(struct{}) int { return 0 } // decisionNames[pDisconnect]: "done"

// disconnect runs every disconnect script on v.
func (r *Runtime) disconnect(ctx context.Context, g *generation, v *vm, ev *hook.DisconnectEvent) struct{} {
	t := v.reqs[pDisconnect]
	for k := range g.chains[pDisconnect] {
		setStrings(t, "user", ev.User, "addr", ev.Addr, "protocol", ev.Protocol, "reason", ev.Reason)
		if _, err := v.run(ctx, pDisconnect, k, t, nil); err != nil {
			r.failed(pDisconnect, v.script(pDisconnect, k), err)
		}
	}
	return struct{}{}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
