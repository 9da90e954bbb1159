// Package auth holds timgw's built-in authenticators: "open" (any user id logs in, as
// t-im did) and "jwt" (HS256 tokens whose subject is the user id). The gateway calls one
// authenticator for cmd 3, cmd 5 and WebSocket query logins alike.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Credentials is what a client presented.
type Credentials struct {
	UserID   string // cmd 5 userId or WebSocket ?username=; may be empty
	Password string // cmd 5 password; may be empty
	Token    string // cmd 3/5 token or WebSocket ?token=; may be empty
}

// Identity is who a client turned out to be.
type Identity struct {
	UserID string
	Nick   string
	Avatar string
	Groups []string // groups joined at login
	Token  string   // the token to hand back in the login response
	// Claims are the verified token's claims (JWT), for the authenticated hook; nil
	// otherwise.
	Claims map[string]any
}

// ErrDenied is wrapped by every refusal, with the reason in the message.
var ErrDenied = errors.New("authentication failed")

func denied(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrDenied, fmt.Sprintf(format, args...))
}

// MaxUserIDLen bounds a user id's length in bytes.
const MaxUserIDLen = 128

// ValidUserID reports why id cannot be a user id, or nil.
func ValidUserID(id string) error {
	switch {
	case id == "":
		return denied("userId is empty")
	case len(id) > MaxUserIDLen:
		return denied("userId is longer than %d bytes", MaxUserIDLen)
	case strings.ContainsAny(id, "\x00\r\n"):
		return denied("userId contains control characters")
	}
	return nil
}

// Open accepts any well-formed user id. A token alone is accepted without identity
// (cmd 3 in t-im only checked a token; in open mode there is nothing to check).
type Open struct{}

// Authenticate implements the gateway's authenticator seam.
func (Open) Authenticate(_ context.Context, c Credentials) (Identity, error) {
	if c.UserID == "" {
		if c.Token != "" {
			return Identity{Token: c.Token}, nil
		}
		return Identity{}, denied("open mode needs a userId")
	}
	if err := ValidUserID(c.UserID); err != nil {
		return Identity{}, err
	}
	tok := c.Token
	if tok == "" {
		tok = sessionToken()
	}
	return Identity{UserID: c.UserID, Token: tok}, nil
}

// sessionToken is an opaque token for the login response of open mode, where t-im
// clients expect one; open mode checks no token, so it only identifies the session.
func sessionToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// JWT accepts HS256 tokens signed with a shared secret. The token's "sub" claim is the
// user id; optional claims "nick", "avatar" and "groups" fill the identity.
type JWT struct {
	Secret   []byte
	Issuer   string
	Audience string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

type claims struct {
	jwt.RegisteredClaims
	Nick   string   `json:"nick,omitempty"`
	Avatar string   `json:"avatar,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// Authenticate implements the gateway's authenticator seam.
func (j *JWT) Authenticate(_ context.Context, c Credentials) (Identity, error) {
	if c.Token == "" {
		return Identity{}, denied("a token is required")
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()}
	if j.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(j.Issuer))
	}
	if j.Audience != "" {
		opts = append(opts, jwt.WithAudience(j.Audience))
	}
	if j.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(j.Now))
	}
	var cl claims
	_, err := jwt.ParseWithClaims(c.Token, &cl, func(*jwt.Token) (any, error) { return j.Secret, nil }, opts...)
	if err != nil {
		return Identity{}, denied("invalid token: %v", err)
	}
	if err := ValidUserID(cl.Subject); err != nil {
		return Identity{}, denied("token subject: %v", err)
	}
	if c.UserID != "" && c.UserID != cl.Subject {
		return Identity{}, denied("userId %q does not match the token's subject", c.UserID)
	}
	all := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(c.Token, all); err != nil {
		return Identity{}, denied("invalid token: %v", err) // verified above: cannot happen
	}
	return Identity{UserID: cl.Subject, Nick: cl.Nick, Avatar: cl.Avatar, Groups: cl.Groups, Token: c.Token, Claims: all}, nil
}

// Sign issues an HS256 token for userID valid for ttl; for tools and tests.
func Sign(secret []byte, userID string, ttl time.Duration) (string, error) {
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: userID, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	})
	s, err := t.SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}
