package lua

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lua "github.com/yuin/gopher-lua"
)

// tim.hmac_sha256(key, message) → hex digest.
func timHMAC(L *lua.LState) int {
	mac := hmac.New(sha256.New, []byte(L.CheckString(1)))
	mac.Write([]byte(L.CheckString(2)))
	L.Push(lua.LString(hex.EncodeToString(mac.Sum(nil))))
	return 1
}

// tim.jwt_verify(token, secret [, {iss=, aud=, leeway=seconds}]) → claims table, or
// nil and an error. HS256 only; exp and nbf are checked when present.
func timJWTVerify(L *lua.LState) int {
	token := L.CheckString(1)
	secret := L.CheckString(2)
	opts := L.OptTable(3, nil)
	claims, err := verifyJWT(token, secret, opts)
	if err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	L.Push(toLua(L, map[string]any(claims)))
	return 1
}

func verifyJWT(token, secret string, opts *lua.LTable) (jwt.MapClaims, error) {
	popts := []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"})}
	if opts != nil {
		if iss := lua.LVAsString(opts.RawGetString("iss")); iss != "" {
			popts = append(popts, jwt.WithIssuer(iss))
		}
		if aud := lua.LVAsString(opts.RawGetString("aud")); aud != "" {
			popts = append(popts, jwt.WithAudience(aud))
		}
		if n, ok := opts.RawGetString("leeway").(lua.LNumber); ok && n > 0 {
			popts = append(popts, jwt.WithLeeway(time.Duration(float64(n)*float64(time.Second))))
		}
	}
	if secret == "" {
		return nil, jwt.ErrTokenUnverifiable
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) {
		return []byte(secret), nil
	}, popts...)
	if err != nil {
		return nil, err
	}
	return claims, nil
}
