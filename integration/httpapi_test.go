package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// TestHTTPAPIKeyRequired checks that every API endpoint but /health answers 401
// without a key or with a wrong one, and accepts the configured key in X-API-Key or
// Authorization: Bearer (and, on the J-IM paths only, in ?api_key=, as
// core/httpapi/README.md documents). A refused send delivers nothing.
func TestHTTPAPIKeyRequired(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	victim := uid("api-victim")
	vc := g.login(t, epTCP, victim)
	send := map[string]any{"from": uid("api-sender"), "to": victim, "cmd": 11, "chatType": 2, "msgType": 0, "content": "keyless"}
	requests := []struct {
		method, path string
		body         any
		jim          bool // a J-IM path, which also takes ?api_key=
	}{
		{method: http.MethodPost, path: "/api/message/send", body: send, jim: true},
		{method: http.MethodGet, path: "/api/user/online?userid=" + victim, jim: true},
		{method: http.MethodGet, path: "/api/user/close?userid=" + url.QueryEscape(uid("nobody")), jim: true},
		{method: http.MethodPost, path: "/api/v1/messages", body: send},
		{method: http.MethodGet, path: "/api/v1/users"},
		{method: http.MethodGet, path: "/api/v1/users/" + victim},
		{method: http.MethodPost, path: "/api/v1/users/" + url.PathEscape(uid("nobody")) + "/kick"},
	}
	keys := []struct {
		name   string
		key    string
		header []string
		query  bool // the key in ?api_key= (accepted on J-IM paths only)
		ok     bool // the key is accepted
	}{
		{name: "no key"},
		{name: "wrong key", key: "wrong-" + testAPIKey},
		{name: "wrong bearer", header: []string{"Authorization", "Bearer wrong"}},
		{name: "bearer", header: []string{"Authorization", "Bearer " + testAPIKey}, ok: true},
		{name: "X-API-Key", key: testAPIKey, ok: true},
		{name: "api_key query", query: true},
	}
	t.Run("endpoints", func(t *testing.T) {
		for _, ep := range []endpoint{epHTTP, epHTTPS} {
			t.Run(string(ep), func(t *testing.T) {
				t.Parallel()
				api := g.api(t, ep)
				api.Key = ""
				r, err := api.Get("/health")
				if err != nil {
					t.Fatalf("GET /health: %v", err) // the transport is broken: the rest would only time out
				}
				if r.Status != http.StatusOK {
					t.Errorf("GET /health without key: %s, want 200", r)
				}
				for _, k := range keys {
					for _, rq := range requests {
						ok := k.ok || (k.query && rq.jim)
						if ok && rq.body != nil {
							continue // sends with a key are covered by the chat tests; deliver nothing here
						}
						api.Key = k.key
						path := rq.path
						if k.query {
							sep := "?"
							if strings.Contains(path, "?") {
								sep = "&"
							}
							path += sep + "api_key=" + testAPIKey
						}
						r, err := api.Do(rq.method, path, rq.body, k.header...)
						if err != nil {
							t.Fatalf("%s %s with %s: %v", rq.method, path, k.name, err)
						}
						if refused := r.Status == http.StatusUnauthorized; refused == ok {
							t.Errorf("%s %s with %s: %s", rq.method, path, k.name, r)
						}
					}
				}
			})
		}
	})
	mustNotGet(t, vc, packet.CmdChatReq, "the receiver of refused sends")
}

// TestHTTPUserOnlineAndClose checks J-IM's /api/user/online (code 10019 online, 10001
// not) and /api/user/close (code 10021, every connection of the user closed).
func TestHTTPUserOnlineAndClose(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	api := g.api(t, epHTTP)
	user := uid("api-user")
	c1 := g.login(t, epTCP, user)
	c2 := g.login(t, epWS, user)

	jim := func(path string, want packet.Status) *timclient.APIResult {
		t.Helper()
		r, err := api.Get(path)
		if err != nil {
			t.Fatal(err)
		}
		code, ok := apiCode(r)
		if r.Status != http.StatusOK || !ok || code != want {
			t.Fatalf("GET %s: %s, want 200 with code %d", path, r, want)
		}
		return r
	}
	jim("/api/user/online?userid="+user, packet.StatusReceiverOnline)
	jim("/api/user/online?userid="+uid("never-seen"), packet.StatusOffline)
	jim("/api/user/close?userid="+user, packet.StatusCloseOK)
	for i, c := range []*timclient.Conn{c1, c2} {
		if _, err := c.ExpectClosed(wait); err != nil {
			t.Errorf("connection %d after /api/user/close: %v", i+1, err)
		}
	}
	eventually(t, "online after close", func() error {
		r, err := api.Get("/api/user/online?userid=" + user)
		if err != nil {
			return err
		}
		if code, _ := apiCode(r); code != packet.StatusOffline {
			return fmt.Errorf("%s, want code 10001", r)
		}
		return nil
	})
}

// TestHTTPAPIv1 sends through /api/v1/messages (as a user) and /api/v1/messages/system
// (as api.system_user), reads a user's presence, and kicks a user.
func TestHTTPAPIv1(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	api := g.api(t, epHTTP)
	sender, receiver := uid("v1-sender"), uid("v1-rcv")
	rc1 := g.login(t, epTCP, receiver)
	rc2 := g.login(t, epWS, receiver)

	call := func(method, path string, body any, wantHTTP int, want packet.Status) *timclient.APIResult {
		t.Helper()
		r, err := api.Do(method, path, body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if code, ok := apiCode(r); r.Status != wantHTTP || !ok || code != want {
			t.Fatalf("%s %s: %s, want HTTP %d with code %d", method, path, r, wantHTTP, want)
		}
		return r
	}

	call(http.MethodPost, "/api/v1/messages",
		map[string]any{"from": sender, "to": receiver, "chatType": 2, "msgType": 0, "content": "v1"}, http.StatusOK, packet.StatusOK)
	checkDelivered(t, mustRecvChat(t, rc1, "receiver over tcp"), sender, receiver, "v1")
	checkDelivered(t, mustRecvChat(t, rc2, "receiver over ws"), sender, receiver, "v1")

	call(http.MethodPost, "/api/v1/messages/system",
		map[string]any{"from": "forged", "to": receiver, "chatType": "2", "content": "from the system"}, http.StatusOK, packet.StatusOK)
	for _, c := range []*timclient.Conn{rc1, rc2} {
		if m := mustRecvChat(t, c, "receiver"); m.From != "system" || m.Content != "from the system" {
			t.Errorf("system message %s: want from \"system\"", jsonString(m))
		}
	}

	call(http.MethodPost, "/api/v1/messages",
		map[string]any{"from": sender, "to": uid("v1-nobody"), "chatType": 2, "content": "anyone?"}, http.StatusOK, packet.StatusOffline)
	call(http.MethodPost, "/api/v1/messages",
		map[string]any{"from": sender, "chatType": 2, "content": "to whom?"}, http.StatusBadRequest, packet.StatusNoReceiver)

	r := call(http.MethodGet, "/api/v1/users/"+receiver, nil, http.StatusOK, packet.StatusGetUserOK)
	var presence struct {
		Data struct {
			Online      bool `json:"online"`
			Connections int  `json:"connections"`
		} `json:"data"`
	}
	if err := jsonUnmarshal(r.Body, &presence); err != nil || !presence.Data.Online || presence.Data.Connections != 2 {
		t.Errorf("presence of %s: %s, want online with 2 connections", receiver, r)
	}

	call(http.MethodPost, "/api/v1/users/"+receiver+"/kick", nil, http.StatusOK, packet.StatusCloseOK)
	for i, c := range []*timclient.Conn{rc1, rc2} {
		if _, err := c.ExpectClosed(wait); err != nil {
			t.Errorf("receiver connection %d after the kick: %v", i+1, err)
		}
	}
}
