package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestOpen(t *testing.T) {
	tests := []struct {
		name    string
		in      Credentials
		want    string
		wantErr string
	}{
		{"user id", Credentials{UserID: "alice", Password: "anything"}, "alice", ""},
		{"token only is accepted without identity", Credentials{Token: "t"}, "", ""},
		{"nothing", Credentials{}, "", "needs a userId"},
		{"too long", Credentials{UserID: strings.Repeat("x", MaxUserIDLen+1)}, "", "longer than"},
		{"control chars", Credentials{UserID: "a\nb"}, "", "control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := Open{}.Authenticate(context.Background(), tt.in)
			checkResult(t, id, err, tt.want, tt.wantErr)
			if err == nil && id.Token == "" {
				t.Error("open mode must hand back a token")
			}
		})
	}
}

func checkResult(t *testing.T, id Identity, err error, want, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want ErrDenied mentioning %q", err, wantErr)
		}
		return
	}
	if err != nil || id.UserID != want {
		t.Fatalf("got %q, %v; want %q", id.UserID, err, want)
	}
}

func TestJWT(t *testing.T) {
	secret := []byte("s3cret")
	sign := func(c jwt.Claims, method jwt.SigningMethod, key any) string {
		s, err := jwt.NewWithClaims(method, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	future := jwt.NewNumericDate(time.Now().Add(time.Hour))
	good := sign(claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "bob", ExpiresAt: future, Issuer: "me"},
		Nick: "Bobby", Groups: []string{"g1"}}, jwt.SigningMethodHS256, secret)
	expired := sign(jwt.RegisteredClaims{Subject: "bob", ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Hour))}, jwt.SigningMethodHS256, secret)
	noExp := sign(jwt.RegisteredClaims{Subject: "bob"}, jwt.SigningMethodHS256, secret)
	otherKey := sign(jwt.RegisteredClaims{Subject: "bob", ExpiresAt: future}, jwt.SigningMethodHS256, []byte("other"))
	hs512 := sign(jwt.RegisteredClaims{Subject: "bob", ExpiresAt: future}, jwt.SigningMethodHS512, secret)
	noSub := sign(jwt.RegisteredClaims{ExpiresAt: future}, jwt.SigningMethodHS256, secret)

	a := &JWT{Secret: secret}
	tests := []struct {
		name    string
		auth    *JWT
		in      Credentials
		want    string
		wantErr string
	}{
		{"good token", a, Credentials{Token: good}, "bob", ""},
		{"good token with matching user", a, Credentials{Token: good, UserID: "bob"}, "bob", ""},
		{"user id differs from subject", a, Credentials{Token: good, UserID: "eve"}, "", "does not match"},
		{"no token", a, Credentials{UserID: "bob", Password: "x"}, "", "token is required"},
		{"expired", a, Credentials{Token: expired}, "", "expired"},
		{"no exp", a, Credentials{Token: noExp}, "", "exp"},
		{"wrong key", a, Credentials{Token: otherKey}, "", "signature"},
		{"other alg", a, Credentials{Token: hs512}, "", "signing method"},
		{"no subject", a, Credentials{Token: noSub}, "", "subject"},
		{"garbage", a, Credentials{Token: "a.b.c"}, "", "invalid token"},
		{"issuer checked", &JWT{Secret: secret, Issuer: "other"}, Credentials{Token: good}, "", "iss"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := tt.auth.Authenticate(context.Background(), tt.in)
			checkResult(t, id, err, tt.want, tt.wantErr)
		})
	}
	id, _ := a.Authenticate(context.Background(), Credentials{Token: good})
	if id.Nick != "Bobby" || len(id.Groups) != 1 || id.Token != good {
		t.Errorf("claims not carried: %+v", id)
	}
	if id.Claims["sub"] != "bob" || id.Claims["iss"] != "me" || id.Claims["nick"] != "Bobby" {
		t.Errorf("all claims not carried for the authenticated hook: %v", id.Claims)
	}
	if id, _ := (Open{}).Authenticate(context.Background(), Credentials{UserID: "bob"}); id.Claims != nil {
		t.Errorf("open mode has claims: %v", id.Claims)
	}
}

func TestSignRoundTrip(t *testing.T) {
	tok, err := Sign([]byte("k"), "carol", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	id, err := (&JWT{Secret: []byte("k")}).Authenticate(context.Background(), Credentials{Token: tok})
	if err != nil || id.UserID != "carol" {
		t.Fatalf("got %+v %v", id, err)
	}
}
