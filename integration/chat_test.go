package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// chatBody is a private chat body as a client on ep writes it: over WebSocket with
// numbers as strings, the way t-im's demo page sends them; elsewhere with numbers.
func chatBody(ep endpoint, to, content string) map[string]any {
	if ep == epWS || ep == epWSS {
		return map[string]any{"cmd": "11", "to": to, "chatType": "2", "msgType": "0", "content": content}
	}
	return map[string]any{"cmd": 11, "to": to, "chatType": 2, "msgType": 0, "content": content}
}

// checkDelivered checks a delivered private message.
func checkDelivered(t *testing.T, m *packet.Chat, from, to, content string) {
	t.Helper()
	if m.From != packet.Str(from) || m.To != packet.Str(to) || m.Content != content ||
		m.ChatType != packet.ChatTypePrivate || m.Cmd != packet.Int(packet.CmdChatReq) {
		t.Errorf("delivered %s, want from %q to %q chatType 2 content %q", jsonString(m), from, to, content)
	}
	if m.ID == "" || m.CreateTime <= 0 {
		t.Errorf("delivered %s: want a server-assigned id and a createTime", jsonString(m))
	}
}

// apiCode reads the status code of an HTTP API answer body, when it has one.
func apiCode(r *timclient.APIResult) (packet.Status, bool) {
	var body struct {
		Code *packet.Status `json:"code"`
	}
	if jsonUnmarshal(r.Body, &body) != nil || body.Code == nil {
		return 0, false
	}
	return *body.Code, true
}

// mustAPISend posts a chat to /api/message/send and requires HTTP 200 and, when the
// answer carries a code, want.
func mustAPISend(t *testing.T, api *timclient.API, chat any, want packet.Status) *timclient.APIResult {
	t.Helper()
	r, err := api.SendMessage(chat)
	if err != nil {
		t.Fatalf("POST /api/message/send: %v", err)
	}
	if r.Status != http.StatusOK {
		t.Fatalf("POST /api/message/send: %s, want 200", r)
	}
	if code, ok := apiCode(r); ok && code != want {
		t.Fatalf("POST /api/message/send: %s, want code %d", r, want)
	}
	return r
}

// TestPrivateChatAcrossProtocols sends a private message from each sending form to
// each receiving form (plain and TLS, on the shared port) and checks the sender's
// cmd 12 and the receiver's cmd 11.
func TestPrivateChatAcrossProtocols(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	for _, tc := range []struct{ from, to endpoint }{
		{from: epTCP, to: epTCP},
		{from: epTCP, to: epWS},
		{from: epWS, to: epTCP},
		{from: epWS, to: epWS},
		{from: epHTTP, to: epTCP},
		{from: epHTTP, to: epWS},
		{from: epTLS, to: epWSS},
		{from: epWSS, to: epTLS},
		{from: epTCP, to: epTLS},
		{from: epWSS, to: epWS},
		{from: epHTTPS, to: epTLS},
		{from: epHTTPS, to: epWSS},
	} {
		t.Run(string(tc.from)+"->"+string(tc.to), func(t *testing.T) {
			t.Parallel()
			sender, receiver := uid("pc-"+string(tc.from)), uid("pc-"+string(tc.to))
			content := "hello " + receiver + " from " + sender
			rc := g.login(t, tc.to, receiver)

			if tc.from == epHTTP || tc.from == epHTTPS {
				body := chatBody(tc.from, receiver, content)
				body["from"] = sender
				mustAPISend(t, g.api(t, tc.from), body, packet.StatusOK)
				checkDelivered(t, mustRecvChat(t, rc, "receiver"), sender, receiver, content)
				return
			}

			sc := g.login(t, tc.from, sender)
			ack, err := sc.Request(packet.CmdChatReq, chatBody(tc.from, receiver, content), wait)
			d := mustAccepted(t, ack, err)
			m := mustRecvChat(t, rc, "receiver")
			checkDelivered(t, m, sender, receiver, content)
			if m.ID != d.ID {
				t.Errorf("receiver got id %q, sender's cmd 12 said %q", m.ID, d.ID)
			}
		})
	}
}

// TestPrivateChatReachesEveryConnection logs a receiver in four times, over several
// protocols: one message reaches all four connections.
func TestPrivateChatReachesEveryConnection(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	for _, tc := range []struct {
		name string
		eps  []endpoint
	}{
		{name: "plain", eps: []endpoint{epTCP, epWS, epTCP, epWS}},
		{name: "with TLS forms", eps: []endpoint{epTCP, epWS, epTLS, epWSS}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sender, receiver := uid("multi-s"), uid("multi-r")
			conns := make([]*timclient.Conn, len(tc.eps))
			for i, ep := range tc.eps {
				conns[i] = g.login(t, ep, receiver)
			}
			sc := g.login(t, epTCP, sender)
			r, err := sc.ChatTo(receiver, "to all of you", wait)
			d := mustAccepted(t, r, err)
			for i, c := range conns {
				m := mustRecvChat(t, c, fmt.Sprintf("receiver connection %d (%s)", i+1, tc.eps[i]))
				checkDelivered(t, m, sender, receiver, "to all of you")
				if m.ID != d.ID {
					t.Errorf("connection %d: id %q, want %q", i+1, m.ID, d.ID)
				}
			}
		})
	}
}

// TestChatForgedFrom sends a message whose from names someone else: the receiver sees
// the logged-in sender.
func TestChatForgedFrom(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	for _, ep := range []endpoint{epTCP, epWS} {
		t.Run(string(ep), func(t *testing.T) {
			t.Parallel()
			alice, bob, mallory := uid("forge-alice"), uid("forge-bob"), uid("forge-mallory")
			bc := g.login(t, epTCP, bob)
			ac := g.login(t, ep, alice)
			body := chatBody(ep, bob, "who am I")
			body["from"] = mallory
			r, err := ac.Request(packet.CmdChatReq, body, wait)
			mustAccepted(t, r, err)
			if m := mustRecvChat(t, bc, "bob"); m.From != packet.Str(alice) {
				t.Errorf("bob got from %q, want the logged-in sender %q", m.From, alice)
			}
		})
	}
}

// TestChatMessageID checks message ids: the server assigns one when the sender gives
// none (the same in the sender's cmd 12 and the receiver's copy), and keeps the
// sender's own.
func TestChatMessageID(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	alice, bob := uid("id-alice"), uid("id-bob")
	bc := g.login(t, epTCP, bob)
	ac := g.login(t, epTCP, alice)

	t.Run("assigned", func(t *testing.T) {
		r, err := ac.ChatTo(bob, "no id", wait)
		d := mustAccepted(t, r, err)
		if m := mustRecvChat(t, bc, "bob"); m.ID != d.ID || m.ID == "" {
			t.Errorf("bob got id %q, cmd 12 said %q", m.ID, d.ID)
		}
	})
	t.Run("kept", func(t *testing.T) {
		id := uid("client-msg-id")
		r, err := ac.Chat(packet.Chat{ID: packet.Str(id), To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: "own id"}, wait)
		mustAccepted(t, r, err)
		if m := mustRecvChat(t, bc, "bob"); m.ID != packet.Str(id) {
			t.Errorf("bob got id %q, want the sender's %q", m.ID, id)
		}
	})
}

// TestChatOfflineReceiver sends to a user who never logged in: cmd 12 code 10001.
func TestChatOfflineReceiver(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	for _, ep := range []endpoint{epTCP, epWS} {
		t.Run(string(ep), func(t *testing.T) {
			t.Parallel()
			c := g.login(t, ep, uid("offline-sender"))
			r, err := c.Request(packet.CmdChatReq, chatBody(ep, uid("nobody"), "anyone?"), wait)
			mustCode(t, "chat to an offline user", r, err, packet.StatusOffline)
		})
	}
}

// TestChatContentLimit checks limits.max_content_bytes (1024 here, counted in bytes):
// content of exactly the limit is accepted, one byte more is refused with 10026, and
// the connection stays usable.
func TestChatContentLimit(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	alice, bob := uid("limit-alice"), uid("limit-bob")
	bc := g.login(t, epTCP, bob)
	for _, tc := range []struct {
		name    string
		content string
		want    packet.Status
	}{
		{name: "at the limit", content: strings.Repeat("a", defMaxContent), want: packet.StatusOK},
		{name: "one byte over", content: strings.Repeat("a", defMaxContent+1), want: packet.StatusTooLarge},
		{name: "over in bytes, under in characters", content: strings.Repeat("汉", defMaxContent/3+1), want: packet.StatusTooLarge},
	} {
		for _, ep := range []endpoint{epTCP, epWS} {
			t.Run(tc.name+"/"+string(ep), func(t *testing.T) {
				ac := g.login(t, ep, alice)
				r, err := ac.Request(packet.CmdChatReq, chatBody(ep, bob, tc.content), wait)
				mustCode(t, "chat", r, err, tc.want)
				if tc.want == packet.StatusOK {
					if m := mustRecvChat(t, bc, "bob"); m.Content != tc.content {
						t.Errorf("bob got %d bytes of content, want %d", len(m.Content), len(tc.content))
					}
				}
				mustSync(t, ac, "sender after the answer")
			})
		}
	}
	mustNotGet(t, bc, packet.CmdChatReq, "bob (refused messages must not be delivered)")
}

// TestChatRefused checks the precise codes of refused chats; each refusal leaves the
// connection open.
func TestChatRefused(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	for _, tc := range []struct {
		name  string
		login bool
		body  string
		want  packet.Status
	}{
		{name: "before login", login: false, body: `{"cmd":11,"to":"someone","chatType":2,"content":"hi"}`, want: packet.StatusNotLoggedIn},
		{name: "private without to", login: true, body: `{"cmd":11,"chatType":2,"content":"hi"}`, want: packet.StatusNoReceiver},
		{name: "bad chatType", login: true, body: `{"cmd":11,"to":"someone","chatType":7,"content":"hi"}`, want: packet.StatusNoReceiver},
		{name: "group not joined", login: true, body: `{"cmd":11,"groupId":"` + uid("not-joined") + `","chatType":1,"content":"hi"}`, want: packet.StatusNotGroupMember},
		{name: "invalid JSON", login: true, body: `{"cmd":11,"to":"someone","chatType":2,"content":`, want: packet.StatusInvalidBody},
	} {
		for _, ep := range []endpoint{epTCP, epWS} {
			if ep == epWS && tc.want == packet.StatusInvalidBody {
				continue // over WebSocket an unreadable body has no cmd: see TestMalformedJSON
			}
			t.Run(tc.name+"/"+string(ep), func(t *testing.T) {
				t.Parallel()
				c := g.dial(t, ep)
				if tc.login {
					mustLogin(t, c, uid("refused"))
				}
				if err := c.WriteFrame(packet.CmdChatReq, []byte(tc.body)); err != nil {
					t.Fatal(err)
				}
				p, err := c.Expect(packet.CmdChatResp, wait)
				if err != nil {
					t.Fatal(err)
				}
				r, err := timclient.DecodeResponse(p)
				mustCode(t, "chat answer", r, err, tc.want)
				mustSync(t, c, "connection after the refusal")
			})
		}
	}
}
