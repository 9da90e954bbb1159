package lua

import (
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/timgw/timgw/core/packet"
)

// The tim functions that help a script route for a bot or a service desk: sending as a
// configured service identity, copying a message to more users without changing its
// conversation, and state that outlives a fixed window (scripts/README.md).

// maxSendsPerCall bounds tim.send and tim.deliver_to per message call.
const maxSendsPerCall = 16

// ttlArg reads a TTL in seconds (> 0, at most 30 days) at argument n.
func ttlArg(L *lua.LState, n int, def float64) time.Duration {
	ttl := float64(L.OptNumber(n, lua.LNumber(def)))
	if ttl <= 0 || ttl > 30*24*3600 {
		L.ArgError(n, "ttl_seconds must be > 0 and <= 30 days")
	}
	return time.Duration(ttl * float64(time.Second))
}

// tim.kv_set(key, value, ttl_seconds): store a string (or number) for ttl_seconds from
// now; setting it again slides the expiry. Shared by every Lua state of the gateway.
func (v *vm) timKVSet(L *lua.LState) int {
	key := L.CheckString(1)
	val := L.CheckAny(2)
	var s string
	switch x := val.(type) {
	case lua.LString:
		s = string(x)
	case lua.LNumber:
		s = x.String()
	case *lua.LNilType:
		v.rt.kv.Delete(key)
		return 0
	default:
		L.ArgError(2, "value must be a string or a number")
	}
	if len(key) > 1024 || len(s) > 4096 {
		L.ArgError(1, "key must be at most 1 KiB and value at most 4 KiB")
	}
	v.rt.kv.Set(key, s, ttlArg(L, 3, 60))
	return 0
}

// tim.kv_get(key) → the value, or nil when missing or expired.
func (v *vm) timKVGet(L *lua.LState) int {
	if s, ok := v.rt.kv.Get(L.CheckString(1)); ok {
		L.Push(lua.LString(s))
	} else {
		L.Push(lua.LNil)
	}
	return 1
}

// tim.kv_del(key): remove key.
func (v *vm) timKVDel(L *lua.LState) int {
	v.rt.kv.Delete(L.CheckString(1))
	return 0
}

// tim.incr_sliding(key, delta, ttl_seconds) → the new value of a counter that lives
// ttl_seconds after its last increment (tim.incr's window is fixed at the first).
func (v *vm) timIncrSliding(L *lua.LState) int {
	key := L.CheckString(1)
	delta := L.OptNumber(2, 1)
	L.Push(number(v.rt.counters.IncrSliding(key, int64(delta), ttlArg(L, 3, 60))))
	return 1
}

// inMessageCall raises an error unless a message hook is running.
func (v *vm) inMessageCall(L *lua.LState, fn string) {
	if v.curPoint != pMessage || v.chat == nil {
		L.RaiseError("%s works in the message hook only", fn)
	}
	if len(v.sends)+len(v.also) >= maxSendsPerCall {
		L.RaiseError("%s: at most %d sends and copies per message", fn, maxSendsPerCall)
	}
}

// tim.send{from=, to= | groupId=, content=, msgType=?, extras=?}: send a message as the
// service identity `from`, which must be listed in hooks.senders. It is routed (stored,
// delivered) after the message being handled, whatever the chain decides, without
// running the message hook again.
func (v *vm) timSend(L *lua.LState) int {
	v.inMessageCall(L, "tim.send")
	t := L.CheckTable(1)
	from := lua.LVAsString(t.RawGetString("from"))
	if !v.gen.senders[from] {
		L.ArgError(1, fmt.Sprintf("from %q is not in hooks.senders", from))
	}
	c := packet.Chat{Cmd: packet.Int(packet.CmdChatReq), From: packet.Str(from),
		To: packet.Str(lua.LVAsString(t.RawGetString("to"))), GroupID: packet.Str(lua.LVAsString(t.RawGetString("groupId"))),
		Content: lua.LVAsString(t.RawGetString("content")), CreateTime: packet.Int(time.Now().UnixMilli())}
	switch {
	case c.To != "" && c.GroupID == "":
		c.ChatType = packet.ChatTypePrivate
	case c.GroupID != "" && c.To == "":
		c.ChatType = packet.ChatTypeGroup
	default:
		L.ArgError(1, "give to (a user) or groupId (a group), not both")
	}
	if n, ok := t.RawGetString("msgType").(lua.LNumber); ok {
		c.MsgType = packet.Int(n)
	}
	if x := t.RawGetString("extras"); x != lua.LNil {
		enc, err := jsonEncodeMax(x, v.gen.maxString)
		if err != nil {
			L.ArgError(1, "extras: "+err.Error())
		}
		c.Extras = enc
	}
	v.sends = append(v.sends, c)
	return 0
}

// tim.deliver_to(user, ...): deliver the message being handled to these users too, in
// its own conversation: it is stored once, with its original receiver, and the sender's
// answer does not name them.
func (v *vm) timDeliverTo(L *lua.LState) int {
	v.inMessageCall(L, "tim.deliver_to")
	for i := 1; i <= L.GetTop(); i++ {
		u := L.CheckString(i)
		if u == "" || len(u) > 128 {
			L.ArgError(i, "a user id of 1 to 128 bytes")
		}
		v.also = append(v.also, u)
	}
	return 0
}
