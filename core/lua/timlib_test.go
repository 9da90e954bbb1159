package lua

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
)

// evalEnv runs Lua expressions through a message hook: the script evaluates
// `content` as a chunk body and puts the returned string into msg.content.
func evalEnv(t *testing.T, vars map[string]any) *testEnv {
	t.Helper()
	return newEnv(t, map[string]string{
		"words.txt": "alpha\n# comment\n\n  beta  \n",
		"eval.lua": `
local C = {}
C.config_str = function() return tim.config("name") end
C.config_dot = function() return tim.config("nested.list")[2] end
C.config_missing = function() return tostring(tim.config("nope")) end
C.now = function() local n = tim.now(); return n > 1.7e12 and n < 1e13 end
C.incr = function() tim.incr("k", 2, 60); return tim.incr("k", 3, 60) .. "/" .. tim.counter("k") end
C.incr_sub = function()
  tim.incr("s", 1, 60, "a long text")
  return tim.incr("s", 1, 60, "a long text") .. "/" .. tim.counter("s", "a long text") .. "/" .. tim.counter("s") .. "/" .. tim.counter("s", "other")
end
C.incr_ttl = function() return pcall(tim.incr, "k", 1, 0) end
C.hash = function() return tim.hash("abc") == tim.hash("abc") and tim.hash("abc") ~= tim.hash("abd") and #tim.hash("x") end
C.online = function() return tostring(tim.is_online("alice")) .. "," .. tostring(tim.is_online("bob")) end
C.json = function()
  local s = tim.json_encode({b = 1, a = {1, 2, "x"}, c = true, d = {}})
  local v = tim.json_decode('{"x": [1, {"y": "z"}], "n": null}')
  return s .. "|" .. v.x[2].y .. "|" .. tostring(v.n)
end
C.json_err = function() local v, err = tim.json_decode("{"); return tostring(v) .. ":" .. (err and "err" or "") end
C.json_fn = function() local v, err = tim.json_encode({f = print or function() end}); return tostring(v) .. ":" .. err end
C.hmac = function() return tim.hmac_sha256("key", "The quick brown fox jumps over the lazy dog") end
C.words = function()
  local m = tim.words({"Foo", "bar baz"})
  local w, s, e = m:find("xx FOO yy")
  local masked, n = m:mask("foo and BAR BAZ", "#")
  return w .. s .. e .. "|" .. masked .. n .. "|" .. m:count() .. "|" .. table.concat(m:find_all("foo foo"), ",")
end
C.words_file = function() local m = tim.words("words"); return m:mask("alpha beta gamma") end
C.words_file_missing = function() return pcall(tim.words, "nope") end
C.words_whole = function() return (tim.words({"ass"}, {whole_words = true}):mask("class ass")) end
C.regex = function()
  local re = tim.regex("(\\d{3})-(\\d{4})")
  local m, a, b = re:find("call 555-1234 now")
  return tostring(re:match("x 123-4567")) .. "|" .. m .. "|" .. a .. "|" .. b .. "|" ..
    re:replace("555-1234 and 555-9999", "$1-XXXX") .. "|" .. #re:find_all("111-2222 333-4444")
end
C.regex_bad = function() return pcall(tim.regex, "(") end
C.log = function() tim.log("warn", "hello from lua", "user", "alice", "n", 3); return "logged" end
C.log_bad = function() return pcall(tim.log, "loud", "x") end
C.constants = function() return tim.REJECTED .. "," .. tim.RATE_LIMITED .. "," .. tim.GROUP .. "," .. tim.PRIVATE end
C.ctx = function(msg, ctx) return ctx.user .. "," .. ctx.protocol .. "," .. ctx.addr end
C.lazy = function(msg) return msg.id .. "," .. msg.chatType .. "," .. msg.msgType .. "," .. msg.createTime .. "," .. msg.groupId end
C.unknown_field = function(msg) return pcall(function() msg.flagged = true end) end
return {message = function(msg, ctx)
  local f = C[msg.content]
  if f then msg.content = tostring(f(msg, ctx)) end
end}`,
	}, func(c *config.Hooks) {
		c.Vars = vars
		c.PoolSize = 1
	})
}

func TestTimLib(t *testing.T) {
	env := evalEnv(t, map[string]any{
		"name":   "timgw",
		"nested": map[string]any{"list": []any{"a", "b"}},
	})
	env.pres.set("alice", true)
	tests := map[string]string{
		"config_str":         "timgw",
		"config_dot":         "b",
		"config_missing":     "nil",
		"now":                "true",
		"incr":               "5/5",
		"incr_ttl":           "false",
		"incr_sub":           "2/2/0/0",
		"hash":               "16",
		"online":             "true,false",
		"json":               `{"a":[1,2,"x"],"b":1,"c":true,"d":{}}|z|nil`,
		"json_err":           "nil:err",
		"json_fn":            "nil:a function has no JSON form",
		"hmac":               "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
		"words":              "Foo46|### and #######2|2|Foo,Foo",
		"words_file":         "***** **** gamma",
		"words_file_missing": "false",
		"words_whole":        "class ***",
		"regex":              "true|555-1234|555|1234|555-XXXX and 555-XXXX|2",
		"regex_bad":          "false",
		"log":                "logged",
		"log_bad":            "false",
		"constants":          "10027,10028,1,2",
		"ctx":                "alice,tcp,1.2.3.4:5",
		"lazy":               "m1,2,1,1700000000000,",
		"unknown_field":      "false",
	}
	for name, want := range tests {
		c := chat("alice", "bob", name)
		c.ID, c.MsgType, c.CreateTime = "m1", 1, 1700000000000
		env.rt.Message(context.Background(), &hook.MessageRequest{Sender: "alice", Protocol: "tcp", Addr: "1.2.3.4:5", Chat: c})
		if c.Content != want {
			t.Errorf("%s = %q, want %q", name, c.Content, want)
		}
	}
	if logs := env.logs.String(); !strings.Contains(logs, `msg="hello from lua" script=eval.lua hook=message user=alice n=3`) {
		t.Errorf("tim.log output missing:\n%s", logs)
	}
}

func TestJWTVerify(t *testing.T) {
	secret := "s3cret"
	sign := func(claims jwt.MapClaims, method jwt.SigningMethod, key any) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	tests := []struct {
		name, token string
		opts        string
		wantOK      bool
		wantErr     string
	}{
		{"valid", sign(jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}, jwt.SigningMethodHS256, []byte(secret)), "", true, ""},
		{"no exp", sign(jwt.MapClaims{"sub": "alice"}, jwt.SigningMethodHS256, []byte(secret)), "", true, ""},
		{"expired", sign(jwt.MapClaims{"sub": "alice", "exp": now.Add(-time.Minute).Unix()}, jwt.SigningMethodHS256, []byte(secret)), "", false, "expired"},
		{"expired within leeway", sign(jwt.MapClaims{"sub": "alice", "exp": now.Add(-time.Minute).Unix()}, jwt.SigningMethodHS256, []byte(secret)), "{leeway = 120}", true, ""},
		{"not yet valid", sign(jwt.MapClaims{"sub": "alice", "nbf": now.Add(time.Hour).Unix()}, jwt.SigningMethodHS256, []byte(secret)), "", false, "not valid yet"},
		{"wrong secret", sign(jwt.MapClaims{"sub": "alice"}, jwt.SigningMethodHS256, []byte("other")), "", false, "signature is invalid"},
		{"HS512 refused", sign(jwt.MapClaims{"sub": "alice"}, jwt.SigningMethodHS512, []byte(secret)), "", false, "signing method HS512 is invalid"},
		{"none refused", sign(jwt.MapClaims{"sub": "alice"}, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType), "", false, "signing method none is invalid"},
		{"issuer ok", sign(jwt.MapClaims{"sub": "alice", "iss": "me"}, jwt.SigningMethodHS256, []byte(secret)), `{iss = "me"}`, true, ""},
		{"issuer wrong", sign(jwt.MapClaims{"sub": "alice", "iss": "you"}, jwt.SigningMethodHS256, []byte(secret)), `{iss = "me"}`, false, "invalid issuer"},
		{"audience", sign(jwt.MapClaims{"sub": "alice", "aud": []string{"a", "b"}}, jwt.SigningMethodHS256, []byte(secret)), `{aud = "b"}`, true, ""},
		{"garbage", "not.a.jwt", "", false, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if opts == "" {
				opts = "nil"
			}
			env := newEnv(t, map[string]string{"j.lua": `
return {message = function(msg)
  local claims, err = tim.jwt_verify(msg.content, "` + secret + `", ` + opts + `)
  if claims then msg.content = "ok:" .. claims.sub else msg.content = "err:" .. err end
end}`}, nil)
			_, c := env.send("u", "v", tt.token)
			if tt.wantOK != strings.HasPrefix(c.Content, "ok:alice") || !strings.Contains(c.Content, tt.wantErr) {
				t.Errorf("got %q, want ok=%v err~%q", c.Content, tt.wantOK, tt.wantErr)
			}
		})
	}
}
