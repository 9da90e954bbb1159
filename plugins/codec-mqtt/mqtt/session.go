package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/timgw/timgw/plugins/codec"
)

// state is where a session is in its life.
type state uint8

const (
	stNew    state = iota // waiting for CONNECT
	stLogin               // CONNECT seen, waiting for the gateway's cmd 6
	stOnline              // CONNACK 0 sent
	stClosed              // closing: everything is ignored
)

// joinWait is a cmd 7 waiting for its cmd 8: from a SUBSCRIBE (sub set) or from a
// PUBLISH to a group the client had not joined.
type joinWait struct {
	group   string
	sub     *pendingSub
	idx     int
	topic   string
	granted byte
}

// pendingSub is a SUBSCRIBE whose SUBACK waits for group joins.
type pendingSub struct {
	id      uint16
	codes   []byte
	waiting int
}

// delivery is a QoS 1 PUBLISH waiting for its PUBACK.
type delivery struct {
	topic   string
	payload []byte
	sent    time.Time
}

// session is one MQTT connection.
type session struct {
	p        *Plugin
	c        codec.Conn
	st       state
	buf      []byte
	opened   time.Time
	lastSeen time.Time

	clientID  string
	keepAlive time.Duration
	user      string
	inboxes   [2]string // inbox/<user>, chat/user/<user>

	subs   map[string]byte // subscribed topic → granted QoS
	groups map[string]bool // groups the user is (or is being made) a member of

	early      []Packet // packets received before CONNACK
	earlyChats [][]byte // deliveries received before CONNACK

	pubs    fifo[uint16] // one per cmd 11 emitted: the PUBLISH's packet id, or 0 for QoS 0
	joins   fifo[joinWait]
	subacks fifo[*pendingSub]

	nextID   uint16
	inflight map[uint16]*delivery
}

var _ codec.ConnHandler = (*session)(nil)

// fifo is a queue.
type fifo[T any] struct{ q []T }

func (f *fifo[T]) push(v T) { f.q = append(f.q, v) }
func (f *fifo[T]) len() int { return len(f.q) }
func (f *fifo[T]) peek() T  { return f.q[0] }
func (f *fifo[T]) pop() (T, bool) {
	var zero T
	if len(f.q) == 0 {
		return zero, false
	}
	v := f.q[0]
	f.q[0] = zero
	f.q = f.q[1:]
	if len(f.q) == 0 {
		f.q = f.q[:0:0]
	}
	return v, true
}

// close ends the session: the host closes the connection after what was written.
func (s *session) close(reason string) {
	if s.st == stClosed {
		return
	}
	s.st = stClosed
	s.c.Close(reason)
}

func (s *session) write(b []byte) { s.c.Write(b) }

// Data implements codec.ConnHandler.
func (s *session) Data(b []byte) {
	if s.st == stClosed {
		return
	}
	s.lastSeen = s.p.now()
	data := b
	if len(s.buf) > 0 {
		s.buf = append(s.buf, b...)
		data = s.buf
	}
	off := 0
	for s.st != stClosed && off < len(data) {
		pk, n, err := Parse(data[off:], s.p.maxFrame)
		if err != nil {
			s.close(fmt.Sprintf("mqtt: %v", err))
			return
		}
		if n == 0 {
			break
		}
		off += n
		s.handle(&pk)
	}
	if s.st == stClosed {
		s.buf = nil
		return
	}
	rest := data[off:]
	if len(s.buf) > 0 {
		s.buf = s.buf[:copy(s.buf, rest)]
		if cap(s.buf) > 64<<10 && len(s.buf) < 4<<10 {
			s.buf = append([]byte(nil), s.buf...)
		}
	} else if len(rest) > 0 {
		s.buf = append(s.buf[:0], rest...)
	}
}

func (s *session) handle(pk *Packet) {
	switch s.st {
	case stNew:
		if pk.Type != CONNECT {
			s.close(fmt.Sprintf("mqtt: first packet is %s, not CONNECT", pk.Type))
			return
		}
		s.connect(pk.Connect)
	case stLogin:
		if pk.Type == CONNECT {
			s.close("mqtt: second CONNECT")
			return
		}
		if len(s.early) >= s.p.opts.MaxQueued {
			s.close(fmt.Sprintf("mqtt: more than %d packets before CONNACK", s.p.opts.MaxQueued))
			return
		}
		s.early = append(s.early, clonePacket(pk))
	case stOnline:
		s.online(pk)
	}
}

func clonePacket(pk *Packet) Packet {
	c := *pk
	c.Payload = bytes.Clone(pk.Payload)
	c.Subscriptions = append([]Subscription(nil), pk.Subscriptions...)
	return c
}

// looksLikeJWT reports whether a password is a JSON Web Token (three base64url parts,
// the first a JSON object): it is then sent to the gateway as a token.
func looksLikeJWT(s string) bool {
	return strings.HasPrefix(s, "eyJ") && strings.Count(s, ".") == 2 && !strings.ContainsAny(s, " \t")
}

// connect logs in through the gateway (cmd 5); CONNACK follows its answer.
func (s *session) connect(c *Connect) {
	if c.ProtocolName != protocolName || c.Level != protocolLevel {
		s.write(AppendConnack(nil, false, RefusedProtocolVersion))
		s.close(fmt.Sprintf("mqtt: protocol %q level %d is not supported (MQTT 3.1.1 only)", c.ProtocolName, c.Level))
		return
	}
	s.clientID = c.ClientID
	if s.clientID == "" {
		if !c.CleanSession {
			s.write(AppendConnack(nil, false, RefusedIdentifierRejected))
			s.close("mqtt: empty client id with clean session 0")
			return
		}
		s.clientID = fmt.Sprintf("timgw-%d", s.c.ID())
	}
	s.keepAlive = time.Duration(c.KeepAlive) * time.Second
	if c.WillFlag {
		s.p.log.Debug("will message ignored (not supported)", "conn", s.c.ID(), "client", s.clientID, "topic", c.WillTopic)
	}
	login := codec.Login{UserID: c.Username}
	if pw := string(c.Password); looksLikeJWT(pw) {
		login.Token = pw
	} else {
		login.Password = pw
	}
	if login.UserID == "" && login.Token == "" {
		login.UserID = s.clientID
	}
	p, err := codec.Encode(codec.CmdLoginReq, login)
	if err != nil { // strings only: cannot fail
		s.write(AppendConnack(nil, false, RefusedServerUnavailable))
		s.close(fmt.Sprintf("mqtt: %v", err))
		return
	}
	s.st = stLogin
	s.c.Emit(p)
}

// connackCode maps a failed login's status to a CONNACK return code.
func connackCode(r *codec.LoginAnswer) byte {
	switch r.Code {
	case codec.StatusRejected, codec.StatusForbidden, codec.StatusRateLimited:
		return RefusedNotAuthorized
	case codec.StatusServerBusy, codec.StatusStorageDown:
		return RefusedServerUnavailable
	case codec.StatusLoginFailed, codec.StatusAuthFailed:
		if strings.HasPrefix(r.Msg, "authentication unavailable") { // the authenticator or the auth hook failed
			return RefusedServerUnavailable
		}
		return RefusedBadUsernamePassword
	}
	return RefusedNotAuthorized
}

func (s *session) loginDone(body []byte) {
	var r codec.LoginAnswer
	if err := json.Unmarshal(body, &r); err != nil {
		s.write(AppendConnack(nil, false, RefusedServerUnavailable))
		s.close(fmt.Sprintf("mqtt: unreadable login answer: %v", err))
		return
	}
	if r.Code != codec.StatusLoginOK || r.User == nil || r.User.UserID == "" {
		if r.Code == codec.StatusLoginOK {
			r.Code, r.Msg = codec.StatusLoginFailed, "no user id"
		}
		s.write(AppendConnack(nil, false, connackCode(&r)))
		s.close(fmt.Sprintf("mqtt: login refused (%d %s)", r.Code, r.Msg))
		return
	}
	s.user = r.User.UserID
	s.inboxes = [2]string{topicInbox + s.user, topicUser + s.user}
	for _, g := range r.User.Groups {
		s.groups[g] = true
	}
	s.st = stOnline
	s.write(AppendConnack(nil, false, Accepted))
	early, chats := s.early, s.earlyChats
	s.early, s.earlyChats = nil, nil
	for i := range early {
		if s.st != stOnline {
			return
		}
		s.online(&early[i])
	}
	for _, c := range chats {
		s.deliver(c)
	}
}

// online handles a packet of a logged-in client.
func (s *session) online(pk *Packet) {
	switch pk.Type {
	case PUBLISH:
		s.publish(pk)
	case PUBACK:
		delete(s.inflight, pk.PacketID)
	case SUBSCRIBE:
		s.subscribe(pk)
	case UNSUBSCRIBE:
		for _, sub := range pk.Subscriptions {
			delete(s.subs, sub.Filter)
		}
		s.write(AppendAck(nil, UNSUBACK, pk.PacketID))
	case PINGREQ:
		s.write([]byte{byte(PINGRESP) << 4, 0})
	case DISCONNECT:
		s.close("mqtt: client sent DISCONNECT")
	case CONNECT:
		s.close("mqtt: second CONNECT")
	case PUBREC, PUBREL, PUBCOMP:
		s.close(fmt.Sprintf("mqtt: %s: QoS 2 is not supported", pk.Type))
	default:
		s.close(fmt.Sprintf("mqtt: %s is not sent by clients", pk.Type))
	}
}

func (s *session) publish(pk *Packet) {
	if pk.QoS == 2 {
		s.close("mqtt: QoS 2 PUBLISH is not supported")
		return
	}
	kind, id := parseTopic(pk.Topic)
	if kind == topicOther {
		s.close(fmt.Sprintf("mqtt: PUBLISH to %q: not a timgw topic (chat/user/<userId>, inbox/<userId>, chat/group/<groupId>)", pk.Topic))
		return
	}
	if kind == topicGrp && !s.groups[id] {
		s.groups[id] = true
		s.joins.push(joinWait{group: id})
		s.c.Emit(codec.Packet{Cmd: codec.CmdJoinGroupReq, Body: joinBody(id)})
	}
	s.p.body = chatBody(s.p.body[:0], kind, id, pk.Payload)
	s.pubs.push(pk.PacketID)
	s.c.Emit(codec.Packet{Cmd: codec.CmdChatReq, Body: s.p.body}) // Emit copies
}

func joinBody(group string) []byte {
	b := append([]byte(`{"cmd":7,"groupId":`), nil...)
	b = appendJSONString(b, group)
	return append(b, '}')
}

func (s *session) subscribe(pk *Packet) {
	ps := &pendingSub{id: pk.PacketID, codes: make([]byte, len(pk.Subscriptions))}
	for i, sub := range pk.Subscriptions {
		granted := min(sub.QoS, 1)
		ps.codes[i] = SubackFailure
		if strings.ContainsAny(sub.Filter, "+#") {
			continue
		}
		switch kind, id := parseTopic(sub.Filter); {
		case kind == topicPrivate && id == s.user:
			ps.codes[i] = granted
			s.subs[sub.Filter] = granted
		case kind == topicGrp && s.groups[id]:
			ps.codes[i] = granted
			s.subs[sub.Filter] = granted
		case kind == topicGrp:
			s.groups[id] = true
			ps.waiting++
			s.joins.push(joinWait{group: id, sub: ps, idx: i, topic: sub.Filter, granted: granted})
			s.c.Emit(codec.Packet{Cmd: codec.CmdJoinGroupReq, Body: joinBody(id)})
		}
	}
	s.subacks.push(ps)
	s.flushSubacks()
}

func (s *session) flushSubacks() {
	for s.subacks.len() > 0 && s.subacks.peek().waiting == 0 {
		ps, _ := s.subacks.pop()
		s.write(AppendSuback(nil, ps.id, ps.codes))
	}
}

// Packet implements codec.ConnHandler: the gateway's packets.
func (s *session) Packet(p codec.Packet) {
	switch p.Cmd {
	case codec.CmdLoginResp:
		if s.st == stLogin {
			s.loginDone(p.Body)
		}
	case codec.CmdChatResp:
		s.chatAnswered(p.Body)
	case codec.CmdJoinGroupResp:
		s.joinAnswered(p.Body)
	case codec.CmdChatReq:
		switch s.st {
		case stOnline:
			s.deliver(p.Body)
		case stLogin: // a chat that overtook the login answer
			if len(s.earlyChats) < s.p.opts.MaxQueued {
				s.earlyChats = append(s.earlyChats, bytes.Clone(p.Body))
			}
		}
	}
}

// statusCode reads a response's "code".
func statusCode(body []byte) codec.Status { return codec.Status(gjson.GetBytes(body, "code").Int()) }

func (s *session) chatAnswered(body []byte) {
	id, ok := s.pubs.pop()
	if !ok || s.st == stClosed {
		return
	}
	if code := statusCode(body); code != codec.StatusOK && code != codec.StatusOffline {
		// MQTT 3.1.1 has no negative PUBACK: the refusal is acknowledged (a resend
		// would be refused again) and logged.
		s.p.log.Info("chat refused", "conn", s.c.ID(), "user", s.user, "code", code, "msg", gjson.GetBytes(body, "msg").String())
	}
	if id != 0 {
		s.write(AppendAck(nil, PUBACK, id))
	}
}

func (s *session) joinAnswered(body []byte) {
	w, ok := s.joins.pop()
	if !ok || s.st == stClosed {
		return
	}
	code := statusCode(body)
	joined := code == codec.StatusJoinGroupOK
	if !joined {
		delete(s.groups, w.group)
		s.p.log.Info("group join refused", "conn", s.c.ID(), "user", s.user, "group", w.group, "code", code, "msg", gjson.GetBytes(body, "msg").String())
	}
	if w.sub == nil {
		return
	}
	if joined {
		w.sub.codes[w.idx] = w.granted
		s.subs[w.topic] = w.granted
	}
	w.sub.waiting--
	s.flushSubacks()
}

// deliver publishes a chat from the gateway on the client's matching subscriptions.
func (s *session) deliver(body []byte) {
	payload := body // the gateway's JSON, valid by construction
	if s.p.opts.Payload == PayloadText {
		payload = []byte(gjson.GetBytes(body, "content").String())
	}
	if gjson.GetBytes(body, "chatType").Int() == codec.ChatGroup { // numbers as strings too
		t := topicGroup + gjson.GetBytes(body, "groupId").String()
		if q, ok := s.subs[t]; ok {
			s.publishOut(t, q, payload)
		}
		return
	}
	for _, t := range s.inboxes {
		if q, ok := s.subs[t]; ok {
			s.publishOut(t, q, payload)
		}
	}
}

func (s *session) publishOut(topic string, qos byte, payload []byte) {
	if s.st != stOnline {
		return
	}
	var id uint16
	if qos > 0 {
		if len(s.inflight) >= s.p.opts.MaxInflight {
			s.close(fmt.Sprintf("mqtt: %d QoS 1 deliveries unacknowledged", len(s.inflight)))
			return
		}
		id = s.packetID()
		if s.inflight == nil {
			s.inflight = make(map[uint16]*delivery)
		}
		s.inflight[id] = &delivery{topic: topic, payload: bytes.Clone(payload), sent: s.p.now()}
	}
	s.p.scratch = AppendPublish(s.p.scratch[:0], topic, payload, qos, id, false, false)
	s.write(s.p.scratch)
}

// packetID returns a free non-zero packet identifier.
func (s *session) packetID() uint16 {
	for {
		s.nextID++
		if s.nextID == 0 {
			continue
		}
		if _, used := s.inflight[s.nextID]; !used {
			return s.nextID
		}
	}
}

func (s *session) tick(now time.Time) {
	if s.st == stClosed {
		return
	}
	if s.st == stOnline && s.keepAlive > 0 && now.Sub(s.lastSeen) > s.keepAlive*3/2 {
		s.close(fmt.Sprintf("mqtt: keepalive: nothing received for %s (keepalive %s)", now.Sub(s.lastSeen).Round(time.Second), s.keepAlive))
		return
	}
	if retry := s.p.opts.RetryInterval; retry > 0 {
		for id, d := range s.inflight {
			if now.Sub(d.sent) >= retry {
				d.sent = now
				s.p.scratch = AppendPublish(s.p.scratch[:0], d.topic, d.payload, 1, id, true, false)
				s.write(s.p.scratch)
			}
		}
	}
}

// Closed implements codec.ConnHandler.
func (s *session) Closed(reason string) {
	s.st = stClosed
	delete(s.p.sessions, s.c.ID())
}

// errNotObject is returned for JSON payloads that are not chat bodies.
var errNotObject = errors.New("not a JSON chat body")

// chatBody appends the cmd 11 body of a PUBLISH to b: the payload is the content,
// unless it is a JSON object with a string member "content", which is then the chat
// body itself (msgType, extras, id and createTime are kept; the topic decides the
// receiver).
func chatBody(b []byte, kind topicKind, id string, payload []byte) []byte {
	if obj, err := jsonChat(payload); err == nil {
		delete(obj, "from")
		delete(obj, "to")
		delete(obj, "groupId")
		obj["cmd"] = json.RawMessage("11")
		if kind == topicGrp {
			obj["chatType"] = json.RawMessage("1")
			obj["groupId"] = json.RawMessage(appendJSONString(nil, id))
		} else {
			obj["chatType"] = json.RawMessage("2")
			obj["to"] = json.RawMessage(appendJSONString(nil, id))
		}
		j, _ := json.Marshal(obj) // raw messages of a decoded object: cannot fail
		return append(b, j...)
	}
	if kind == topicGrp {
		b = append(b, `{"cmd":11,"chatType":1,"msgType":0,"groupId":`...)
	} else {
		b = append(b, `{"cmd":11,"chatType":2,"msgType":0,"to":`...)
	}
	b = appendJSONString(b, id)
	b = append(b, `,"content":`...)
	b = appendJSONString(b, payload)
	return append(b, '}')
}

func jsonChat(payload []byte) (map[string]json.RawMessage, error) {
	t := bytes.TrimSpace(payload)
	if len(t) == 0 || t[0] != '{' {
		return nil, errNotObject
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(t, &obj); err != nil {
		return nil, errNotObject
	}
	c, ok := obj["content"]
	if !ok || len(c) == 0 || c[0] != '"' {
		return nil, errNotObject
	}
	return obj, nil
}
