package lua

import (
	"context"
	"errors"
	"fmt"

	lua "github.com/yuin/gopher-lua"

	"github.com/timgw/timgw/core/hook"
)

// Event runs the event scripts: function(ev), once per webhook event before it is
// queued. ev is a read-only view of the event (type, id, time, node, user, message =
// {id, from, to, groupId, chatType, msgType, content, seq}, offline_users, members,
// code, reason) and ev.extra a table the scripts fill; they return nil or "pass" (next
// script) or "drop" (suppress the event, skip the rest). The point follows the message
// point's policy and order: a failing script leaves the event unchanged under
// fail_open (no extra, not dropped) and suppresses it under fail_closed.
func (r *Runtime) Event(ctx context.Context, req *hook.EventRequest) hook.EventReply {
	g := r.gen.Load()
	if len(g.chains[pEvent]) == 0 || req == nil {
		return hook.EventReply{}
	}
	return call(ctx, r, g, pEvent, func() hook.EventReply { return failEvent(g, "") }, eventDecision,
		func(v *vm) hook.EventReply { return r.event(ctx, g, v, req) })
}

// eventDecision indexes decisionNames[pEvent].
func eventDecision(rep hook.EventReply) int { return b2i(rep.Drop) }

// failEvent is the reply of a failed event call: the event unchanged under fail_open,
// suppressed under fail_closed.
func failEvent(g *generation, script string) hook.EventReply {
	if !g.failClosed[pEvent] {
		return hook.EventReply{}
	}
	return hook.EventReply{Drop: true, Script: script}
}

// event runs the event chain on v. Every script sees the same ev and extra: what one
// adds, the next reads.
func (r *Runtime) event(ctx context.Context, g *generation, v *vm, req *hook.EventRequest) hook.EventReply {
	ev, extra := v.eventView(req)
	var out map[string]any
	for k := range g.chains[pEvent] {
		s := v.script(pEvent, k)
		res, err := v.run(ctx, pEvent, k, ev, nil)
		var d string
		if err == nil {
			d, err = decision(res[0])
		}
		if err == nil && d != "" && d != "pass" && d != "drop" {
			err = fmt.Errorf("unknown decision %q (want nil, \"pass\" or \"drop\")", d)
		}
		if err == nil && d != "drop" {
			out, err = eventExtra(extra, g.maxString)
		}
		if err != nil {
			r.failed(pEvent, s, err)
			return failEvent(g, s.name)
		}
		if d == "drop" {
			return hook.EventReply{Drop: true, Script: s.name}
		}
	}
	return hook.EventReply{Extra: out}
}

var errExtraList = errors.New("ev.extra is a list; it must have named fields")

// eventExtra reads ev.extra: nil when empty, an error when it is a list, holds a value
// JSON cannot carry, or its JSON would exceed limit bytes.
func eventExtra(extra *lua.LTable, limit int) (map[string]any, error) {
	g, err := toGo(extra, 0)
	if err != nil {
		return nil, fmt.Errorf("ev.extra: %w", err)
	}
	m, ok := g.(map[string]any)
	if !ok {
		return nil, errExtraList
	}
	if len(m) == 0 {
		return nil, nil
	}
	if n := jsonSize(m, limit); n > limit {
		return nil, fmt.Errorf("ev.extra: its JSON would exceed hooks.max_string_bytes (%d)", limit)
	}
	return m, nil
}

// eventView builds the read-only ev table of req, and its extra table.
func (v *vm) eventView(req *hook.EventRequest) (ev, extra *lua.LTable) {
	L := v.L
	d := L.CreateTable(0, 12)
	setStrings(d, "type", req.Type, "id", req.ID, "node", req.Node)
	d.RawSetString("time", lua.LNumber(req.Time))
	if req.User != "" {
		d.RawSetString("user", lua.LString(req.User))
	}
	if m := req.Message; m != nil {
		mt := L.CreateTable(0, 8)
		setStrings(mt, "id", m.ID, "from", m.From, "to", m.To, "groupId", m.GroupID, "content", m.Content)
		mt.RawSetString("chatType", number(m.ChatType))
		mt.RawSetString("msgType", number(m.MsgType))
		mt.RawSetString("seq", number(m.Seq))
		d.RawSetString("message", v.readOnly(mt))
	}
	if req.OfflineUsers != nil {
		d.RawSetString("offline_users", toLua(L, req.OfflineUsers)) // a copy: changes are not read back
	}
	if req.Members != 0 {
		d.RawSetString("members", number(int64(req.Members)))
	}
	if req.Code != 0 || req.Reason != "" {
		d.RawSetString("code", number(int64(req.Code)))
		d.RawSetString("reason", lua.LString(req.Reason))
	}
	extra = L.NewTable()
	d.RawSetString("extra", extra)
	return v.readOnly(d), extra
}

// readOnly returns a table reading data's fields, whose assignment is an error (pairs
// does not see the fields).
func (v *vm) readOnly(data *lua.LTable) *lua.LTable {
	L := v.L
	mt := lock(L.CreateTable(0, 3))
	mt.RawSetString("__index", data)
	mt.RawSetString("__newindex", v.refuseWrite())
	t := L.CreateTable(0, 0)
	L.SetMetatable(t, mt)
	return t
}

// refuseWrite is the __newindex of the event views, one per Lua state.
func (v *vm) refuseWrite() *lua.LFunction {
	if v.evWrite == nil {
		v.evWrite = v.L.NewFunction(func(L *lua.LState) int {
			L.RaiseError("ev is read-only: add fields to ev.extra")
			return 0
		})
	}
	return v.evWrite
}
