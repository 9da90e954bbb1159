package lua

import (
	"context"
	"fmt"

	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/packet"
)

// Message runs the message scripts: function(msg, ctx). msg has the chat's fields
// (id, from, to, groupId, chatType, msgType, content, createTime, extras); ctx is
// {user, protocol, addr}. A script changes the message by assigning content, extras,
// to (a user id or a list of them), groupId or chatType, and returns nil or "pass"
// (next script), "accept" (skip the rest), "reject", reason [, code], or "drop".
func (r *Runtime) Message(ctx context.Context, req *hook.MessageRequest) (rep hook.MessageReply) {
	g := r.gen.Load()
	if len(g.chains[pMessage]) == 0 || req == nil || req.Chat == nil {
		return rep
	}
	fired := g.fireGuards(r, req)
	if fired != nil && fired.none() {
		r.metrics.guardSkip()
		return rep // every script is guarded and no guard fired: no Lua state needed
	}
	return call(ctx, r, g, pMessage, func() hook.MessageReply { return rejectMessage(g, "") }, messageDecision,
		func(v *vm) hook.MessageReply { return r.message(ctx, g, v, req, fired) })
}

// firedGuards says, per script of the message chain, which of its guards fired: "" none
// (skip the script), "*" the script has no guard (run it), or the guard's name.
type firedGuards []string

func (f firedGuards) none() bool {
	for _, s := range f {
		if s != "" {
			return false
		}
	}
	return true
}

// fireGuards evaluates the guards of the message chain's scripts (tim.guard) for req;
// nil when no script of the chain has one.
func (g *generation) fireGuards(r *Runtime, req *hook.MessageRequest) firedGuards {
	chain := g.chains[pMessage]
	var out firedGuards
	for k, i := range chain {
		gd := g.guards[i]
		if gd == nil {
			continue
		}
		if out == nil {
			out = make(firedGuards, len(chain))
			for j := range out {
				out[j] = "*"
			}
		}
		out[k] = gd.fire(r, req)
	}
	return out
}

// messageDecision indexes decisionNames[pMessage].
func messageDecision(rep hook.MessageReply) int { return int(rep.Action) }

// message runs the message chain on v and hands back what the scripts changed and the
// messages they sent (tim.send, tim.deliver_to).
func (r *Runtime) message(ctx context.Context, g *generation, v *vm, req *hook.MessageRequest, fired firedGuards) hook.MessageReply {
	v.setMessage(req)
	rep := r.messageChain(ctx, g, v, req, fired)
	if len(v.sends) > 0 {
		rep.Sends = append([]packet.Chat(nil), v.sends...)
	}
	if len(v.also) > 0 && (rep.Action == hook.MessagePass || rep.Action == hook.MessageRewrite) {
		rep.Also = append([]string(nil), v.also...)
	}
	v.chat, v.sends, v.also = nil, v.sends[:0], v.also[:0]
	return rep
}

// messageChain runs the scripts of the message chain in order.
func (r *Runtime) messageChain(ctx context.Context, g *generation, v *vm, req *hook.MessageRequest, fired firedGuards) (rep hook.MessageReply) {
	last := "" // the last script that ran without failing
	for k := range g.chains[pMessage] {
		s := v.script(pMessage, k)
		if fired != nil {
			if fired[k] == "" {
				continue // its guard did not fire: nothing for it to do
			}
			v.setGuard(fired[k])
		}
		if k > 0 {
			v.restoreReadOnly(req.Chat)
		}
		ns, na := len(v.sends), len(v.also)
		res, err := v.run(ctx, pMessage, k, v.msg, v.msgCtx)
		var d string
		if err == nil {
			d, err = decision(res[0])
		}
		if err == nil {
			switch d {
			case "", "pass":
				last = s.name
				continue
			case "accept":
				last = s.name
			case "reject":
				return hook.MessageReply{
					Action: hook.MessageReject,
					Code:   status(res[2], packet.StatusRejected),
					Reason: text(res[1], "message rejected"),
					Script: s.name,
				}
			case "drop":
				return hook.MessageReply{Action: hook.MessageDrop, Script: s.name}
			default:
				err = fmt.Errorf("unknown decision %q (want nil, \"pass\", \"accept\", \"reject\" or \"drop\")", d)
			}
		}
		if err != nil {
			v.sends, v.also = v.sends[:ns], v.also[:na] // a failed script sends nothing
			r.failed(pMessage, s, err)
			if g.failClosed[pMessage] {
				return rejectMessage(g, s.name)
			}
			continue
		}
		break // accept
	}
	if err := v.readMessage(req.Chat, &rep); err != nil {
		r.failed(pMessage, nil, fmt.Errorf("message changed by %s: %w", last, err))
		if g.failClosed[pMessage] {
			return rejectMessage(g, last)
		}
	}
	if rep.Changed != 0 {
		rep.Script = last
	}
	return rep
}

func rejectMessage(g *generation, script string) hook.MessageReply {
	if !g.failClosed[pMessage] {
		return hook.MessageReply{}
	}
	return hook.MessageReply{
		Action: hook.MessageReject,
		Code:   packet.StatusRejected,
		Reason: "message refused: message hook failed",
		Script: script,
	}
}
