package lua

import (
	"bytes"
	"fmt"

	lua "github.com/yuin/gopher-lua"

	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/packet"
)

// The msg table of a message call is reused by every call of a VM. Setting a field
// costs about 75 ns in gopher-lua, so only the fields nearly every script reads (from,
// to, content) are set per call; the others are lazy: msg's __index produces them on
// first read (and stores them, so later reads are plain table reads). msg's
// __newindex accepts writes of known absent fields and refuses unknown names, so no
// stray field survives into the next message.

// Lazy fields, as bits of vm.touched.
const (
	lazyID uint8 = 1 << iota
	lazyGroupID
	lazyChatType
	lazyMsgType
	lazyCreateTime
	lazyExtras
)

var lazyFields = map[string]uint8{
	"id": lazyID, "groupId": lazyGroupID, "chatType": lazyChatType,
	"msgType": lazyMsgType, "createTime": lazyCreateTime, "extras": lazyExtras,
}

// lazyNames are the lazy fields in bit order.
var lazyNames = [...]string{"id", "groupId", "chatType", "msgType", "createTime", "extras"}

// setMessage fills the VM's msg and ctx tables for a request.
func (v *vm) setMessage(req *hook.MessageRequest) {
	c, t := req.Chat, v.msg
	v.chat = c
	if v.touched != 0 { // clear what the previous call materialized or wrote
		for i, name := range lazyNames {
			if v.touched&(1<<i) != 0 {
				t.RawSetString(name, lua.LNil)
			}
		}
		v.touched = 0
	}
	t.RawSetString("from", lua.LString(c.From))
	t.RawSetString("to", lua.LString(c.To))
	t.RawSetString("content", lua.LString(c.Content))
	v.msgReq = req
	v.sends, v.also, v.guardFired = v.sends[:0], v.also[:0], ""
	if v.ctxTouched { // ctx fields are lazy too: clear the previous call's
		x := v.msgCtx
		for _, name := range ctxNames {
			x.RawSetString(name, lua.LNil)
		}
		v.ctxTouched = false
	}
}

// readOnlyLazy are the lazy fields a script cannot change (bits of vm.touched).
const readOnlyLazy = lazyID | lazyMsgType | lazyCreateTime

// restoreReadOnly undoes what the previous script of the chain wrote into msg's
// read-only fields (from, id, msgType, createTime), so that no script sees another's
// forged sender.
func (v *vm) restoreReadOnly(c *packet.Chat) {
	t := v.msg
	if s, ok := t.RawGetString("from").(lua.LString); !ok || string(s) != string(c.From) {
		t.RawSetString("from", lua.LString(c.From))
	}
	if v.touched&readOnlyLazy != 0 {
		for i, name := range lazyNames {
			if bit := uint8(1) << i; bit&readOnlyLazy != 0 && v.touched&bit != 0 {
				t.RawSetString(name, lua.LNil) // produced again on the next read
				v.touched &^= bit
			}
		}
	}
}

// ctxNames are the fields of a message call's ctx table.
var ctxNames = [...]string{"user", "protocol", "addr", "guard"}

// setGuard sets the ctx.guard the next script of the chain sees: the guard of its that
// fired ("*": it has none, and ctx.guard is nil).
func (v *vm) setGuard(name string) {
	if name == "*" {
		name = ""
	}
	v.guardFired = name
	v.msgCtx.RawSetString("guard", lua.LNil) // produced again by ctxIndex
}

// ctxIndex is the __index of a message call's ctx table: {user, protocol, addr},
// produced on first read.
func (v *vm) ctxIndex(L *lua.LState) int {
	t := L.CheckTable(1)
	key, _ := L.Get(2).(lua.LString)
	req := v.msgReq
	var val lua.LValue = lua.LNil
	if req != nil {
		switch key {
		case "user":
			val = lua.LString(req.Sender)
		case "protocol":
			val = lua.LString(req.Protocol)
		case "addr":
			val = lua.LString(req.Addr)
		case "guard":
			if v.guardFired != "" {
				val = lua.LString(v.guardFired)
			}
		}
	}
	if val != lua.LNil {
		t.RawSetString(string(key), val)
		v.ctxTouched = true
	}
	L.Push(val)
	return 1
}

// msgIndex is msg's __index: it produces a lazy field on first read. msg.extras
// decodes the extras object (an empty table when there is none), so messages whose
// scripts never look at extras pay nothing for JSON.
func (v *vm) msgIndex(L *lua.LState) int {
	t := L.CheckTable(1)
	key, _ := L.Get(2).(lua.LString)
	bit, ok := lazyFields[string(key)]
	if !ok || v.chat == nil || v.touched&bit != 0 {
		L.Push(lua.LNil) // unknown, or set to nil by the script
		return 1
	}
	c := v.chat
	var val lua.LValue
	switch bit {
	case lazyID:
		val = lua.LString(c.ID)
	case lazyGroupID:
		val = lua.LString(c.GroupID)
	case lazyChatType:
		val = lua.LNumber(c.ChatType)
	case lazyMsgType:
		val = lua.LNumber(c.MsgType)
	case lazyCreateTime:
		val = lua.LNumber(c.CreateTime)
	case lazyExtras:
		if len(c.Extras) > 0 {
			if dec, err := jsonDecode(L, c.Extras); err == nil {
				if _, isTable := dec.(*lua.LTable); isTable {
					val = dec
				}
			}
		}
		if val == nil {
			val = L.NewTable()
		}
	}
	v.touched |= bit
	t.RawSetString(string(key), val)
	L.Push(val)
	return 1
}

// msgNewIndex is msg's __newindex, called for writes to absent fields: known fields
// are stored, unknown names are an error (use a local variable instead).
func (v *vm) msgNewIndex(L *lua.LState) int {
	t := L.CheckTable(1)
	key, _ := L.Get(2).(lua.LString)
	val := L.Get(3)
	switch key {
	case "from", "to", "content":
	default:
		bit, ok := lazyFields[string(key)]
		if !ok {
			L.RaiseError("msg has no field %q (fields: id, from, to, groupId, chatType, msgType, content, createTime, extras)", L.Get(2).String())
		}
		v.touched |= bit
	}
	t.RawSetString(string(key), val)
	return 0
}

// readMessage applies the scripts' changes of msg to c and fills rep's action.
func (v *vm) readMessage(c *packet.Chat, rep *hook.MessageReply) error {
	t := v.msg
	if s := lua.LVAsString(t.RawGetString("content")); s != c.Content {
		c.Content = s
		rep.Changed |= hook.ChangedContent
	}
	if v.touched&lazyExtras != 0 {
		if x := t.RawGetString("extras"); x != lua.LNil {
			enc, err := jsonEncode(x)
			if err != nil {
				return fmt.Errorf("extras: %w", err)
			}
			orig := canonicalJSON(c.Extras)
			if !(bytes.Equal(enc, orig) || orig == nil && string(enc) == "{}") {
				c.Extras = enc
				rep.Changed |= hook.ChangedExtras
			}
		}
	}
	var to []string
	if s, ok := t.RawGetString("to").(lua.LString); !ok || string(s) != string(c.To) {
		list, err := stringList(t.RawGetString("to"))
		if err != nil {
			return fmt.Errorf("to: %w", err)
		}
		to = list
		if !(len(to) == 0 && c.To == "" || len(to) == 1 && to[0] == string(c.To)) {
			rep.Changed |= hook.ChangedTo
		}
	} else if c.To != "" {
		to = []string{string(c.To)} // only used when the group changed
	}
	group := string(c.GroupID)
	if v.touched&lazyGroupID != 0 {
		group = lua.LVAsString(t.RawGetString("groupId"))
		if group != string(c.GroupID) {
			rep.Changed |= hook.ChangedGroup
		}
	}
	chatType := c.ChatType
	if v.touched&lazyChatType != 0 {
		if n, ok := t.RawGetString("chatType").(lua.LNumber); ok {
			chatType = packet.Int(n)
		}
	}
	if rep.Changed&(hook.ChangedTo|hook.ChangedGroup) != 0 && chatType == c.ChatType {
		switch {
		case group != "" && len(to) == 0:
			chatType = packet.ChatTypeGroup
		case len(to) > 0 && group == "":
			chatType = packet.ChatTypePrivate
		}
	}
	if chatType != c.ChatType {
		rep.Changed |= hook.ChangedChatType
	}
	switch {
	case rep.Changed&hook.Routing != 0:
		rep.Action, rep.To, rep.GroupID = hook.MessageReroute, to, group
		c.To, c.GroupID, c.ChatType = "", packet.Str(group), chatType
		if len(to) == 1 {
			c.To = packet.Str(to[0])
		}
	case rep.Changed != 0:
		rep.Action = hook.MessageRewrite
	}
	return nil
}
