package mqtt

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/timgw/timgw/plugins/codec"
	"github.com/timgw/timgw/plugins/codec/codectest"
)

// harness is one plugin with one connection and a controllable clock.
type harness struct {
	t    *testing.T
	p    *Plugin
	conn *codectest.Conn
	h    codec.ConnHandler
	now  time.Time
}

func newHarness(t *testing.T, opts map[string]string) *harness {
	t.Helper()
	x := &harness{t: t, p: New(), conn: &codectest.Conn{Id: 42, Remote: "127.0.0.1:1", Proto: "mqtt"}, now: time.Unix(1000, 0)}
	x.p.now = func() time.Time { return x.now }
	if _, err := x.p.Init(codec.Hello{Name: "mqtt", Options: opts, MaxFrame: 4096}); err != nil {
		t.Fatal(err)
	}
	x.h = x.p.Open(x.conn)
	return x
}

// send writes client packets.
func (x *harness) send(ps ...*Packet) {
	var b []byte
	for _, p := range ps {
		b = Encode(b, p)
	}
	x.h.Data(b)
}

// written returns the packets the plugin wrote to the client since the last call.
func (x *harness) written() []Packet {
	x.t.Helper()
	var out []Packet
	b := x.conn.TakeWritten()
	for len(b) > 0 {
		p, n, err := Parse(b, 0)
		if err != nil || n == 0 {
			x.t.Fatalf("plugin wrote unparsable bytes %x: %v", b, err)
		}
		out = append(out, p)
		b = b[n:]
	}
	return out
}

// emitted returns the packets emitted to the gateway since the last call, bodies
// decoded.
func (x *harness) emitted() []map[string]any {
	x.t.Helper()
	var out []map[string]any
	for _, p := range x.conn.TakeEmitted() {
		var m map[string]any
		if err := json.Unmarshal(p.Body, &m); err != nil {
			x.t.Fatalf("emitted cmd %d with body %s: %v", p.Cmd, p.Body, err)
		}
		m["_cmd"] = float64(p.Cmd)
		out = append(out, m)
	}
	return out
}

// gateway hands the plugin a packet of the gateway with body v as JSON.
func (x *harness) gateway(cmd codec.Cmd, v any) {
	x.t.Helper()
	p, err := codec.Encode(cmd, v)
	if err != nil {
		x.t.Fatal(err)
	}
	x.h.Packet(p)
}

// answer is the gateway's response to command cmd (in the login answer's shape, with no
// user: every response encodes alike).
func answer(cmd codec.Cmd, code codec.Status) *codec.LoginAnswer {
	return &codec.LoginAnswer{Response: codec.Response{Cmd: cmd, Code: code}}
}

func (x *harness) mustClosed(want string) {
	x.t.Helper()
	closed, reason := x.conn.Closed()
	if !closed || !strings.Contains(reason, want) {
		x.t.Fatalf("closed=%v reason=%q, want closed with %q", closed, reason, want)
	}
}

func (x *harness) mustOpen() {
	x.t.Helper()
	if closed, reason := x.conn.Closed(); closed {
		x.t.Fatalf("connection closed: %s", reason)
	}
}

func loginOK(user string, groups ...string) *codec.LoginAnswer {
	r := answer(codec.CmdLoginResp, codec.StatusLoginOK)
	r.User = &codec.User{UserID: user, Groups: groups}
	return r
}

// online logs the harness in as alice.
func (x *harness) online(groups ...string) {
	x.t.Helper()
	x.send(connectPacket(Connect{CleanSession: true, KeepAlive: 10, ClientID: "dev1", HasUsername: true, Username: "alice", HasPassword: true, Password: []byte("pw")}))
	x.emitted()
	x.gateway(codec.CmdLoginResp, loginOK("alice", groups...))
	if w := x.written(); len(w) != 1 || w[0].Type != CONNACK || w[0].ReturnCode != Accepted {
		x.t.Fatalf("after login: %+v, want CONNACK 0", w)
	}
}

func TestConnectLogin(t *testing.T) {
	const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig"
	// The SDK's Login leaves out an empty password or token; the gateway reads an absent
	// one as empty.
	tests := []struct {
		name string
		c    Connect
		want map[string]any
	}{
		{"user and password", Connect{CleanSession: true, ClientID: "c", HasUsername: true, Username: "alice", HasPassword: true, Password: []byte("pw")},
			map[string]any{"userId": "alice", "password": "pw"}},
		{"token as password", Connect{CleanSession: true, ClientID: "c", HasUsername: true, Username: "alice", HasPassword: true, Password: []byte(jwt)},
			map[string]any{"userId": "alice", "token": jwt}},
		{"token, no user name", Connect{CleanSession: true, ClientID: "c", HasUsername: true, HasPassword: true, Password: []byte(jwt)},
			map[string]any{"userId": "", "token": jwt}},
		{"client id as user", Connect{CleanSession: true, ClientID: "sensor-7"},
			map[string]any{"userId": "sensor-7"}},
		{"generated client id", Connect{CleanSession: true},
			map[string]any{"userId": "timgw-42"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newHarness(t, nil)
			x.send(connectPacket(tt.c))
			e := x.emitted()
			if len(e) != 1 || e[0]["_cmd"] != float64(codec.CmdLoginReq) {
				t.Fatalf("emitted %v, want one cmd 5", e)
			}
			delete(e[0], "_cmd")
			if !reflect.DeepEqual(e[0], tt.want) {
				t.Fatalf("login body %v, want %v", e[0], tt.want)
			}
			if w := x.written(); len(w) != 0 {
				t.Fatalf("wrote %+v before the login answer", w)
			}
		})
	}
}

func TestConnectRefused(t *testing.T) {
	tests := []struct {
		name   string
		c      *Packet
		answer *codec.LoginAnswer
		code   byte
	}{
		{"bad password", nil, answer(codec.CmdLoginResp, codec.StatusLoginFailed), RefusedBadUsernamePassword},
		{"rule rejects", nil, answer(codec.CmdLoginResp, codec.StatusRejected), RefusedNotAuthorized},
		{"auth down", nil, &codec.LoginAnswer{Response: codec.Response{Cmd: codec.CmdLoginResp, Code: codec.StatusLoginFailed, Msg: "authentication unavailable"}}, RefusedServerUnavailable},
		{"no user in answer", nil, answer(codec.CmdLoginResp, codec.StatusLoginOK), RefusedBadUsernamePassword},
		{"mqtt 5", &Packet{Type: CONNECT, Connect: &Connect{ProtocolName: "MQTT", Level: 5}}, nil, RefusedProtocolVersion},
		{"mqtt 3.1", &Packet{Type: CONNECT, Connect: &Connect{ProtocolName: "MQIsdp", Level: 3}}, nil, RefusedProtocolVersion},
		{"persistent session without id", connectPacket(Connect{}), nil, RefusedIdentifierRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newHarness(t, nil)
			c := tt.c
			if c == nil {
				c = connectPacket(Connect{CleanSession: true, ClientID: "c", HasUsername: true, Username: "alice"})
			}
			x.send(c)
			if tt.answer != nil {
				x.gateway(codec.CmdLoginResp, tt.answer)
			}
			w := x.written()
			if len(w) != 1 || w[0].Type != CONNACK || w[0].ReturnCode != tt.code {
				t.Fatalf("wrote %+v, want CONNACK %d", w, tt.code)
			}
			x.mustClosed("mqtt")
		})
	}
}

func TestProtocolViolations(t *testing.T) {
	tests := []struct {
		name   string
		online bool
		p      *Packet
		want   string
	}{
		{"first not connect", false, &Packet{Type: PINGREQ}, "not CONNECT"},
		{"second connect", true, connectPacket(Connect{CleanSession: true, ClientID: "x"}), "second CONNECT"},
		{"qos 2 publish", true, &Packet{Type: PUBLISH, Topic: "chat/user/bob", QoS: 2, PacketID: 1}, "QoS 2"},
		{"pubrel", true, &Packet{Type: PUBREL, PacketID: 1}, "QoS 2"},
		{"foreign topic", true, &Packet{Type: PUBLISH, Topic: "sensors/temp", Payload: []byte("1")}, "not a timgw topic"},
		{"empty id", true, &Packet{Type: PUBLISH, Topic: "chat/user/", Payload: []byte("1")}, "not a timgw topic"},
		{"server packet", true, &Packet{Type: SUBACK, PacketID: 1, ReturnCodes: []byte{0}}, "not sent by clients"},
		{"disconnect", true, &Packet{Type: DISCONNECT}, "DISCONNECT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newHarness(t, nil)
			if tt.online {
				x.online()
			}
			x.send(tt.p)
			x.mustClosed(tt.want)
		})
	}
	t.Run("garbage", func(t *testing.T) {
		x := newHarness(t, nil)
		x.h.Data([]byte{0xF0, 0x00})
		x.mustClosed("malformed")
	})
	t.Run("too large", func(t *testing.T) {
		x := newHarness(t, nil)
		x.online()
		x.send(&Packet{Type: PUBLISH, Topic: "chat/user/bob", Payload: make([]byte, 100<<10)})
		x.mustClosed("too large")
	})
}

func TestPublish(t *testing.T) {
	tests := []struct {
		name    string
		topic   string
		payload string
		want    map[string]any
	}{
		{"private text", "chat/user/bob", "hello \"bob\"",
			map[string]any{"cmd": 11.0, "chatType": 2.0, "msgType": 0.0, "to": "bob", "content": "hello \"bob\""}},
		{"inbox alias", "inbox/bob", "hi",
			map[string]any{"cmd": 11.0, "chatType": 2.0, "msgType": 0.0, "to": "bob", "content": "hi"}},
		{"json body", "chat/user/bob", `{"content":"img","msgType":1,"extras":{"k":"v"},"from":"mallory","to":"eve","id":"m1"}`,
			map[string]any{"cmd": 11.0, "chatType": 2.0, "msgType": 1.0, "to": "bob", "content": "img", "extras": map[string]any{"k": "v"}, "id": "m1"}},
		{"json without content is text", "chat/user/bob", `{"temp":21}`,
			map[string]any{"cmd": 11.0, "chatType": 2.0, "msgType": 0.0, "to": "bob", "content": `{"temp":21}`}},
		{"group member", "chat/group/g0", "yo",
			map[string]any{"cmd": 11.0, "chatType": 1.0, "msgType": 0.0, "groupId": "g0", "content": "yo"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newHarness(t, nil)
			x.online("g0")
			x.send(&Packet{Type: PUBLISH, Topic: tt.topic, QoS: 1, PacketID: 5, Payload: []byte(tt.payload)})
			e := x.emitted()
			if len(e) != 1 {
				t.Fatalf("emitted %v, want one chat", e)
			}
			delete(e[0], "_cmd")
			if !reflect.DeepEqual(e[0], tt.want) {
				t.Fatalf("chat %v, want %v", e[0], tt.want)
			}
			if w := x.written(); len(w) != 0 {
				t.Fatalf("PUBACK %+v before the gateway's answer", w)
			}
			x.gateway(codec.CmdChatResp, answer(codec.CmdChatResp, codec.StatusOK))
			if w := x.written(); len(w) != 1 || w[0].Type != PUBACK || w[0].PacketID != 5 {
				t.Fatalf("wrote %+v, want PUBACK 5", w)
			}
		})
	}
}

func TestPublishAcksInOrder(t *testing.T) {
	x := newHarness(t, nil)
	x.online()
	x.send(&Packet{Type: PUBLISH, Topic: "chat/user/b", QoS: 1, PacketID: 1, Payload: []byte("1")},
		&Packet{Type: PUBLISH, Topic: "chat/user/b", Payload: []byte("2")},
		&Packet{Type: PUBLISH, Topic: "chat/group/new", QoS: 1, PacketID: 3, Payload: []byte("3")})
	e := x.emitted()
	cmds := []float64{}
	for _, m := range e {
		cmds = append(cmds, m["_cmd"].(float64))
	}
	if !reflect.DeepEqual(cmds, []float64{11, 11, 7, 11}) {
		t.Fatalf("emitted cmds %v, want 11 11 7 11 (join before the first group chat)", cmds)
	}
	x.gateway(codec.CmdChatResp, answer(codec.CmdChatResp, codec.StatusOffline))
	x.gateway(codec.CmdChatResp, answer(codec.CmdChatResp, codec.StatusOK))
	x.gateway(codec.CmdJoinGroupResp, answer(codec.CmdJoinGroupResp, codec.StatusJoinGroupOK))
	x.gateway(codec.CmdChatResp, answer(codec.CmdChatResp, codec.StatusNotGroupMember))
	var ids []uint16
	for _, p := range x.written() {
		ids = append(ids, p.PacketID)
	}
	if !reflect.DeepEqual(ids, []uint16{1, 3}) {
		t.Fatalf("PUBACKs %v, want [1 3]", ids)
	}
	x.send(&Packet{Type: PUBLISH, Topic: "chat/group/new", Payload: []byte("4")})
	if e := x.emitted(); len(e) != 1 {
		t.Fatalf("second publish to a joined group emitted %v, want only the chat", e)
	}
}

func TestSubscribe(t *testing.T) {
	x := newHarness(t, nil)
	x.online("g0")
	x.send(&Packet{Type: SUBSCRIBE, PacketID: 9, Subscriptions: []Subscription{
		{"inbox/alice", 1}, {"chat/user/bob", 0}, {"chat/group/g1", 2}, {"chat/group/+", 0},
		{"chat/group/g0", 0}, {"#", 1}, {"other", 0}, {"chat/group/locked", 1},
	}})
	e := x.emitted()
	if len(e) != 2 || e[0]["groupId"] != "g1" || e[1]["groupId"] != "locked" {
		t.Fatalf("emitted %v, want joins of g1 and locked", e)
	}
	if w := x.written(); len(w) != 0 {
		t.Fatalf("SUBACK %+v before the joins were answered", w)
	}
	// A second SUBSCRIBE waits for the first.
	x.send(&Packet{Type: SUBSCRIBE, PacketID: 10, Subscriptions: []Subscription{{"chat/user/alice", 0}}})
	x.gateway(codec.CmdJoinGroupResp, answer(codec.CmdJoinGroupResp, codec.StatusJoinGroupOK))
	if w := x.written(); len(w) != 0 {
		t.Fatalf("SUBACK %+v with one join still waiting", w)
	}
	x.gateway(codec.CmdJoinGroupResp, answer(codec.CmdJoinGroupResp, codec.StatusRejected))
	w := x.written()
	if len(w) != 2 || w[0].PacketID != 9 || w[1].PacketID != 10 {
		t.Fatalf("wrote %+v, want SUBACK 9 then 10", w)
	}
	if want := []byte{1, 0x80, 1, 0x80, 0, 0x80, 0x80, 0x80}; !reflect.DeepEqual(w[0].ReturnCodes, want) {
		t.Fatalf("SUBACK codes %v, want %v", w[0].ReturnCodes, want)
	}
	x.send(&Packet{Type: UNSUBSCRIBE, PacketID: 11, Subscriptions: []Subscription{{Filter: "chat/group/g1"}}})
	if w := x.written(); len(w) != 1 || w[0].Type != UNSUBACK || w[0].PacketID != 11 {
		t.Fatalf("wrote %+v, want UNSUBACK 11", w)
	}
	if _, ok := x.p.sessions[42].subs["chat/group/g1"]; ok {
		t.Fatal("still subscribed after UNSUBSCRIBE")
	}
}

func chat(from, to, group, content string) *codec.Chat {
	c := &codec.Chat{ID: "m1", From: from, Cmd: 11, Content: content, ChatType: codec.ChatPrivate, To: to}
	if group != "" {
		c.ChatType, c.GroupID, c.To = codec.ChatGroup, group, ""
	}
	return c
}

func TestDeliveries(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]string
		subs    []Subscription
		chat    *codec.Chat
		topics  []string
		qos     byte
		payload string
	}{
		{"inbox json", nil, []Subscription{{"inbox/alice", 1}}, chat("bob", "alice", "", "hi"), []string{"inbox/alice"}, 1, ""},
		{"both inbox names", nil, []Subscription{{"inbox/alice", 0}, {"chat/user/alice", 0}}, chat("bob", "alice", "", "hi"), []string{"inbox/alice", "chat/user/alice"}, 0, ""},
		{"not subscribed", nil, nil, chat("bob", "alice", "", "hi"), nil, 0, ""},
		{"group", nil, []Subscription{{"chat/group/g0", 1}}, chat("bob", "", "g0", "all"), []string{"chat/group/g0"}, 1, ""},
		{"other group", nil, []Subscription{{"chat/group/g0", 1}}, chat("bob", "", "g9", "all"), nil, 0, ""},
		{"text payload", map[string]string{"payload": "text"}, []Subscription{{"inbox/alice", 0}}, chat("bob", "alice", "", "just text"), []string{"inbox/alice"}, 0, "just text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newHarness(t, tt.opts)
			x.online("g0")
			if len(tt.subs) > 0 {
				x.send(&Packet{Type: SUBSCRIBE, PacketID: 1, Subscriptions: tt.subs})
				x.written()
			}
			x.gateway(codec.CmdChatReq, tt.chat)
			w := x.written()
			if len(w) != len(tt.topics) {
				t.Fatalf("wrote %+v, want PUBLISH on %v", w, tt.topics)
			}
			for i, p := range w {
				if p.Type != PUBLISH || p.Topic != tt.topics[i] || p.QoS != tt.qos || (p.QoS == 1) != (p.PacketID != 0) {
					t.Fatalf("PUBLISH %+v, want topic %s QoS %d", p, tt.topics[i], tt.qos)
				}
				if tt.payload != "" {
					if string(p.Payload) != tt.payload {
						t.Fatalf("payload %q, want %q", p.Payload, tt.payload)
					}
					continue
				}
				var got codec.Chat
				if err := json.Unmarshal(p.Payload, &got); err != nil || got.Content != tt.chat.Content || got.From != tt.chat.From {
					t.Fatalf("payload %s: %v", p.Payload, err)
				}
			}
		})
	}
}

func TestQoS1DeliveryResendAndAck(t *testing.T) {
	x := newHarness(t, map[string]string{"retry_interval": "5s", "max_inflight": "2"})
	x.online()
	x.send(&Packet{Type: SUBSCRIBE, PacketID: 1, Subscriptions: []Subscription{{"inbox/alice", 1}}})
	x.written()
	x.gateway(codec.CmdChatReq, chat("bob", "alice", "", "one"))
	first := x.written()[0]
	x.now = x.now.Add(4 * time.Second)
	x.p.Tick(x.now)
	if w := x.written(); len(w) != 0 {
		t.Fatalf("resent %+v before retry_interval", w)
	}
	x.send(&Packet{Type: PINGREQ})
	x.written()
	x.now = x.now.Add(2 * time.Second)
	x.p.Tick(x.now)
	w := x.written()
	if len(w) != 1 || !w[0].Dup || w[0].PacketID != first.PacketID {
		t.Fatalf("resend %+v, want DUP of packet %d", w, first.PacketID)
	}
	x.send(&Packet{Type: PUBACK, PacketID: first.PacketID})
	x.now = x.now.Add(6 * time.Second)
	x.p.Tick(x.now)
	if w := x.written(); len(w) != 0 {
		t.Fatalf("resent %+v after PUBACK", w)
	}
	for i := range 3 {
		x.gateway(codec.CmdChatReq, chat("bob", "alice", "", fmt.Sprint(i)))
	}
	x.mustClosed("unacknowledged")
}

func TestKeepalive(t *testing.T) {
	x := newHarness(t, nil)
	x.online() // keepalive 10 s
	x.now = x.now.Add(14 * time.Second)
	x.send(&Packet{Type: PINGREQ})
	if w := x.written(); len(w) != 1 || w[0].Type != PINGRESP {
		t.Fatalf("wrote %+v, want PINGRESP", w)
	}
	x.now = x.now.Add(14 * time.Second)
	x.p.Tick(x.now)
	x.mustOpen()
	x.now = x.now.Add(2 * time.Second)
	x.p.Tick(x.now)
	x.mustClosed("keepalive")
}

func TestEarlyPacketsAndSplitReads(t *testing.T) {
	x := newHarness(t, nil)
	var b []byte
	b = Encode(b, connectPacket(Connect{CleanSession: true, ClientID: "c", HasUsername: true, Username: "alice"}))
	b = Encode(b, &Packet{Type: SUBSCRIBE, PacketID: 1, Subscriptions: []Subscription{{"inbox/alice", 0}}})
	b = Encode(b, &Packet{Type: PUBLISH, Topic: "chat/user/bob", Payload: []byte("early")})
	for i := range b { // one byte at a time
		x.h.Data(b[i : i+1])
	}
	if e := x.emitted(); len(e) != 1 || e[0]["_cmd"] != 5.0 {
		t.Fatalf("emitted %v before CONNACK, want only the login", e)
	}
	x.gateway(codec.CmdChatReq, chat("bob", "alice", "", "overtook the login answer"))
	x.gateway(codec.CmdLoginResp, loginOK("alice"))
	w := x.written()
	if len(w) != 3 || w[0].Type != CONNACK || w[1].Type != SUBACK || w[2].Type != PUBLISH {
		t.Fatalf("wrote %+v, want CONNACK, SUBACK, PUBLISH", w)
	}
	if e := x.emitted(); len(e) != 1 || e[0]["content"] != "early" {
		t.Fatalf("emitted %v, want the early chat", e)
	}
}

func TestClosedForgetsSession(t *testing.T) {
	x := newHarness(t, nil)
	x.online()
	x.h.Closed("peer left")
	if len(x.p.sessions) != 0 {
		t.Fatal("session kept after Closed")
	}
	x.gateway(codec.CmdChatReq, chat("bob", "alice", "", "late"))
	if w := x.written(); len(w) != 0 {
		t.Fatalf("wrote %+v after Closed", w)
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		in map[string]string
		ok bool
	}{
		{nil, true},
		{map[string]string{"payload": "text", "retry_interval": "0s", "max_inflight": "10", "max_queued": "5"}, true},
		{map[string]string{"payload": "xml"}, false},
		{map[string]string{"retry_interval": "soon"}, false},
		{map[string]string{"max_inflight": "0"}, false},
		{map[string]string{"retain": "yes"}, false},
	}
	for _, tt := range tests {
		if _, err := ParseOptions(tt.in); (err == nil) != tt.ok {
			t.Errorf("ParseOptions(%v): %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}
