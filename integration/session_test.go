package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// TestCloseOwnConnection sends cmd 14 naming the caller: the server closes that
// connection without an answer, and the user's other connection stays open.
func TestCloseOwnConnection(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	for _, ep := range []endpoint{epTCP, epWS} {
		t.Run(string(ep), func(t *testing.T) {
			t.Parallel()
			alice := uid("closeself")
			c1 := g.login(t, ep, alice)
			c2 := g.login(t, epTCP, alice)
			if err := c1.Send(packet.CmdCloseReq, map[string]any{"userId": alice}); err != nil {
				t.Fatal(err)
			}
			got, err := c1.ExpectClosed(wait)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) > 0 {
				t.Errorf("got %s before the close, want no answer", timclient.Describe(got))
			}
			mustSync(t, c2, "alice's other connection")
		})
	}
}

// TestCloseOtherUserForbidden sends cmd 14 naming another user: answered with cmd 14
// code 10029, and both users stay connected and logged in.
func TestCloseOtherUserForbidden(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	for _, ep := range []endpoint{epTCP, epWS} {
		t.Run(string(ep), func(t *testing.T) {
			t.Parallel()
			mallory, bob := uid("mallory"), uid("victim")
			bc := g.login(t, epTCP, bob)
			mc := g.login(t, ep, mallory)
			r, err := mc.Request(packet.CmdCloseReq, map[string]any{"userId": bob}, wait)
			mustCode(t, "closing another user", r, err, packet.StatusForbidden)
			mustSync(t, bc, "bob")
			mustSync(t, mc, "mallory")
			r, err = mc.ChatTo(bob, "still here?", wait)
			mustAccepted(t, r, err)
			mustRecvChat(t, bc, "bob")
		})
	}
}

// eventually retries check until it returns nil or wait passes, then fails t with its
// last error. It is for state the gateway updates asynchronously (a closed connection
// making its user offline).
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestGetUser asks cmd 17 for online (type 0), offline (1) and all (2) users, with two
// users online and one who logged in and left.
func TestGetUser(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	me, other, gone := uid("gu-me"), uid("gu-other"), uid("gu-gone")
	c := g.login(t, epTCP, me)
	g.login(t, epWS, other)
	gc := g.login(t, epTCP, gone)
	if err := gc.Send(packet.CmdCloseReq, map[string]any{"userId": gone}); err != nil {
		t.Fatal(err)
	}
	if _, err := gc.ExpectClosed(wait); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		typ  int
		code packet.Status
		want map[string]string // user → status; "" means must be absent
	}{
		{typ: 0, code: packet.StatusGetOnlineOK, want: map[string]string{me: "online", other: "online", gone: ""}},
		{typ: 1, code: packet.StatusGetOfflineOK, want: map[string]string{me: "", other: "", gone: "offline"}},
		{typ: 2, code: packet.StatusGetUserOK, want: map[string]string{me: "online", other: "online", gone: "offline"}},
	} {
		t.Run(fmt.Sprintf("type %d", tc.typ), func(t *testing.T) {
			eventually(t, "user list", func() error {
				r, users, err := c.GetUsers(me, tc.typ, wait)
				if err != nil {
					return err
				}
				if r.Code != tc.code {
					return fmt.Errorf("code %d, want %d: %s", r.Code, tc.code, r.Data)
				}
				status := map[string]string{}
				for _, u := range users {
					status[u.UserID] = u.Status
				}
				for user, want := range tc.want {
					got, listed := status[user]
					switch {
					case want == "" && listed:
						return fmt.Errorf("%s is listed (status %q), want it absent", user, got)
					case want != "" && (!listed || got != want):
						return fmt.Errorf("%s: listed %v with status %q, want status %q", user, listed, got, want)
					}
				}
				return nil
			})
		})
	}
}

// TestGetUserOfAnother asks cmd 17 with another user's id: answered with cmd 18 code
// 10029 (a client may only query what is its own).
func TestGetUserOfAnother(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	c := g.login(t, epTCP, uid("gu-nosy"))
	r, _, err := c.GetUsers(uid("gu-someone"), 0, wait)
	mustCode(t, "get user of another", r, err, packet.StatusForbidden)
}

// TestIdleTimeout leaves connections silent after one heartbeat: the gateway (idle
// timeout 2s) closes them.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	g := jwtGateway(t)
	for _, ep := range []endpoint{epTCP, epWS} {
		t.Run(string(ep), func(t *testing.T) {
			t.Parallel()
			c := g.dial(t, ep)
			mustSync(t, c, "heartbeat")
			if _, err := c.ExpectClosed(jwtIdle + wait); err != nil {
				t.Fatal(err)
			}
		})
	}
}
