package lua

import (
	"context"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/timgw/timgw/core/packet"
)

// timModule builds the `tim` table of a VM (scripts/README.md documents it).
func (v *vm) timModule() *lua.LTable {
	L := v.L
	t := L.NewTable()
	L.SetFuncs(t, map[string]lua.LGFunction{
		"log":          v.timLog,
		"now":          timNow,
		"config":       v.timConfig,
		"vars":         v.timVars,
		"incr":         v.timIncr,
		"incr_sliding": v.timIncrSliding,
		"kv_set":       v.timKVSet,
		"kv_get":       v.timKVGet,
		"kv_del":       v.timKVDel,
		"send":         v.timSend,
		"deliver_to":   v.timDeliverTo,
		"guard":        v.timGuard,
		"counter":      v.timCounter,
		"hash":         timHash,
		"is_online":    v.timIsOnline,
		"json_encode":  v.timJSONEncode,
		"json_decode":  timJSONDecode,
		"hmac_sha256":  timHMAC,
		"jwt_verify":   timJWTVerify,
		"words":        v.timWords,
		"regex":        v.timRegex,
	})
	for name, code := range map[string]packet.Status{
		"REJECTED": packet.StatusRejected, "RATE_LIMITED": packet.StatusRateLimited,
		"FORBIDDEN": packet.StatusForbidden, "TOO_LARGE": packet.StatusTooLarge,
		"NOT_GROUP_MEMBER": packet.StatusNotGroupMember, "AUTH_FAILED": packet.StatusAuthFailed,
		"LOGIN_FAILED": packet.StatusLoginFailed, "JOIN_FAILED": packet.StatusJoinGroupFailed,
	} {
		t.RawSetString(name, lua.LNumber(code))
	}
	t.RawSetString("GROUP", lua.LNumber(packet.ChatTypeGroup))
	t.RawSetString("PRIVATE", lua.LNumber(packet.ChatTypePrivate))
	v.registerMatcherType()
	v.registerRegexType()
	return t
}

// tim.log(level, msg, key, value, ...): a structured log line with the script's name.
func (v *vm) timLog(L *lua.LState) int {
	var level slog.Level
	switch strings.ToLower(L.CheckString(1)) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		L.ArgError(1, "level must be debug, info, warn or error")
	}
	msg := L.CheckString(2)
	attrs := make([]any, 0, 4+L.GetTop()-2)
	if v.cur != nil {
		attrs = append(attrs, "script", v.cur.name)
	}
	attrs = append(attrs, "hook", v.curPoint.String())
	for i := 3; i <= L.GetTop(); i += 2 {
		key := L.ToStringMeta(L.Get(i)).String()
		val, err := toGo(L.Get(i+1), 0)
		if err != nil {
			val = L.Get(i + 1).String()
		}
		attrs = append(attrs, key, val)
	}
	v.rt.log.Log(context.Background(), level, msg, attrs...)
	return 0
}

// tim.now() → milliseconds since the epoch.
func timNow(L *lua.LState) int {
	L.Push(lua.LNumber(time.Now().UnixMilli()))
	return 1
}

// tim.config(key) → the value of hooks.vars[key] (nil when missing). A dotted key
// ("moderation.words") walks nested maps when no top-level key has that name.
func (v *vm) timConfig(L *lua.LState) int {
	key := L.CheckString(1)
	val, ok := v.gen.vars[key]
	if !ok {
		val, ok = lookupPath(v.gen.vars, key)
	}
	if !ok {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(toLua(L, val))
	return 1
}

func lookupPath(vars map[string]any, key string) (any, bool) {
	var cur any = vars
	for _, part := range strings.Split(key, ".") {
		switch m := cur.(type) {
		case map[string]any:
			v, ok := m[part]
			if !ok {
				return nil, false
			}
			cur = v
		case map[any]any:
			v, ok := m[part]
			if !ok {
				return nil, false
			}
			cur = v
		default:
			return nil, false
		}
	}
	return cur, true
}

// tim.incr(key, delta, ttl_seconds [, subkey]) → the new value of a counter shared by
// every Lua state. The counter starts at 0 and lives ttl_seconds from its first
// increment. With subkey the counter is the pair (key, subkey): the same as key ..
// subkey, without building that string (subkey may be a whole message).
func (v *vm) timIncr(L *lua.LState) int {
	key := L.CheckString(1)
	delta := L.OptNumber(2, 1)
	ttl := float64(L.OptNumber(3, 60))
	if ttl <= 0 || ttl > 30*24*3600 {
		L.ArgError(3, "ttl_seconds must be > 0 and <= 30 days")
	}
	d := time.Duration(ttl * float64(time.Second))
	var n int64
	if sub, ok := L.Get(4).(lua.LString); ok {
		n = v.rt.counters.IncrSub(key, string(sub), int64(delta), d)
	} else {
		n = v.rt.counters.Incr(key, int64(delta), d)
	}
	L.Push(number(n))
	return 1
}

// tim.counter(key [, subkey]) → the current value of a counter (0 when missing or
// expired).
func (v *vm) timCounter(L *lua.LState) int {
	key := L.CheckString(1)
	if sub, ok := L.Get(2).(lua.LString); ok {
		L.Push(number(v.rt.counters.GetSub(key, string(sub))))
		return 1
	}
	L.Push(number(v.rt.counters.Get(key)))
	return 1
}

// tim.hash(text) → a 16-hex-digit FNV-1a hash, for counter keys of long texts.
func timHash(L *lua.LState) int {
	h := fnv.New64a()
	h.Write([]byte(L.CheckString(1)))
	L.Push(lua.LString(strconv.FormatUint(h.Sum64(), 16)))
	return 1
}

// tim.is_online(user) → whether the user has a live session.
func (v *vm) timIsOnline(L *lua.LState) int {
	user := L.CheckString(1)
	L.Push(lua.LBool(v.rt.presence != nil && v.rt.presence.Online(user)))
	return 1
}

// tim.json_encode(value) → string, or nil and an error.
func (v *vm) timJSONEncode(L *lua.LState) int {
	b, err := jsonEncodeMax(L.Get(1), v.gen.maxString)
	if err == nil {
		v.produce(L, "tim.json_encode", len(b))
	} else {
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	L.Push(lua.LString(b))
	return 1
}

// tim.json_decode(text) → value, or nil and an error.
func timJSONDecode(L *lua.LState) int {
	val, err := jsonDecode(L, []byte(L.CheckString(1)))
	if err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	L.Push(val)
	return 1
}
