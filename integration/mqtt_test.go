package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/plugins/codec-mqtt/mqtt"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// MQTT tests: mosquitto_pub and mosquitto_sub (Debian package mosquitto-clients) talk
// to timgw's built-in MQTT codec plugin and chat with t-im TCP and WebSocket users.
// Helpers of this file (the gateway with codec plugins, mosquitto wrappers, a raw MQTT
// client) are the codec plugin work's own: the shared harness has no codecs section.

// needMosquitto skips t when the mosquitto clients are missing, and fails it under CI
// (where .ci/run installs them).
func needMosquitto(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found: install the Debian package mosquitto-clients", bin)
			}
			t.Skipf("%s not found (Debian package mosquitto-clients)", bin)
		}
	}
}

// codecGateway is a gateway with the MQTT plugin on the shared port and on MQTTAddr.
type codecGateway struct {
	*gateway
	MQTTAddr string
}

// codecConfigFile writes a configuration with the MQTT plugin (on the shared port and on
// a port of its own), top-level YAML top and more plugin entries plugins, in workDir, and
// returns its path and the plugin's own address.
func codecConfigFile(name, auth, top, plugins string) (path, mqttAddr string, err error) {
	if mqttAddr, err = freeAddr(); err != nil {
		return "", "", err
	}
	cfg := fmt.Sprintf(`listen: "127.0.0.1:0"
tls:
  cert: %q
  key: %q
auth:
  mode: %s
  jwt:
    secret: %q
api:
  keys: [%q]
limits:
  max_frame_bytes: %d
  max_content_bytes: %d
log:
  level: debug
%s
codecs:
  restart:
    backoff_min: 100ms
    backoff_max: 1s
  plugins:
    - name: mqtt
      builtin: codec-mqtt
      listen: [%q]
      options:
        retry_interval: 2s
%s`, certs.CertFile, certs.KeyFile, auth, jwtSecret, testAPIKey, defMaxFrame, defMaxContent, top, mqttAddr, plugins)
	path = filepath.Join(workDir, name+".yaml")
	return path, mqttAddr, os.WriteFile(path, []byte(cfg), 0o600)
}

// waitDial waits until addr accepts connections.
func waitDial(addr string) error {
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	mqttGWOnce sync.Once
	mqttGWPath string
	mqttGWAddr string
	mqttGWErr  error
)

// mqttGateway is the shared open-mode gateway with the MQTT plugin.
func mqttGateway(t *testing.T) *codecGateway {
	t.Helper()
	mqttGWOnce.Do(func() { mqttGWPath, mqttGWAddr, mqttGWErr = codecConfigFile("mqtt", "open", "", "") })
	if mqttGWErr != nil {
		t.Fatal(mqttGWErr)
	}
	g := sharedGateway(t, "mqtt", gwConfig{File: mqttGWPath})
	if err := waitDial(mqttGWAddr); err != nil {
		t.Fatalf("MQTT port %s: %v", mqttGWAddr, err)
	}
	return &codecGateway{gateway: g, MQTTAddr: mqttGWAddr}
}

// startCodecGateway starts a gateway of its own for t with the MQTT plugin (see
// codecConfigFile).
func startCodecGateway(t *testing.T, name, auth, top, plugins string) *codecGateway {
	t.Helper()
	path, addr, err := codecConfigFile(uid(name), auth, top, plugins)
	if err != nil {
		t.Fatal(err)
	}
	g := startTestGateway(t, name, gwConfig{File: path})
	if err := waitDial(addr); err != nil {
		t.Fatalf("MQTT port %s: %v", addr, err)
	}
	return &codecGateway{gateway: g, MQTTAddr: addr}
}

func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// mqttSub is a running mosquitto_sub.
type mqttSub struct {
	name    string
	cmd     *exec.Cmd
	msgs    chan string // "topic payload" lines
	out     *logBuffer  // everything it printed
	ready   chan struct{}
	subacks chan struct{} // one per SUBACK seen (mosquitto_sub resubscribes after reconnecting)
	exited  chan struct{}
}

// startSub runs mosquitto_sub -v -d against addr as user (password "x" unless extra
// sets one) on topics, and waits for its SUBACK.
func startSub(t *testing.T, addr, user string, topics []string, extra ...string) *mqttSub {
	t.Helper()
	s := startSubNoWait(t, addr, user, topics, extra...)
	select {
	case <-s.ready:
	case <-s.exited:
		t.Fatalf("mosquitto_sub %s exited before subscribing:\n%s", user, s.out.From(0))
	case <-time.After(wait):
		t.Fatalf("mosquitto_sub %s: no SUBACK within %s:\n%s", user, wait, s.out.From(0))
	}
	return s
}

func startSubNoWait(t *testing.T, addr, user string, topics []string, extra ...string) *mqttSub {
	t.Helper()
	host, port := hostPort(t, addr)
	args := []string{"-h", host, "-p", port, "-i", uid("sub-" + user), "-u", user, "-q", "1", "-v", "-d"}
	if !containsArg(extra, "-P") {
		args = append(args, "-P", "x")
	}
	for _, tp := range topics {
		args = append(args, "-t", tp)
	}
	args = append(args, extra...)
	bin, args := "mosquitto_sub", args
	if sb, err := exec.LookPath("stdbuf"); err == nil { // line-buffer its stdout
		bin, args = sb, append([]string{"-oL", "mosquitto_sub"}, args...)
	}
	s := &mqttSub{name: user, msgs: make(chan string, 1000), out: &logBuffer{}, ready: make(chan struct{}),
		subacks: make(chan struct{}, 100), exited: make(chan struct{})}
	s.cmd = exec.Command(bin, args...)
	setPdeathsig(s.cmd)
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.exited)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		readyOnce := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			_, _ = s.out.Write([]byte(line + "\n"))
			switch {
			case strings.HasPrefix(line, "Subscribed (mid:"):
				readyOnce.Do(func() { close(s.ready) })
				s.subacks <- struct{}{}
			case strings.HasPrefix(line, "Client "), strings.HasPrefix(line, "Warning"):
			default:
				s.msgs <- line
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = s.cmd.Wait()
	}()
	t.Cleanup(s.stop)
	return s
}

func containsArg(args []string, a string) bool {
	for _, x := range args {
		if x == a {
			return true
		}
	}
	return false
}

func (s *mqttSub) stop() {
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// expect waits for the next message and checks its topic; it returns the payload.
func (s *mqttSub) expect(t *testing.T, topic string) string {
	t.Helper()
	select {
	case line := <-s.msgs:
		tp, payload, _ := strings.Cut(line, " ")
		if tp != topic {
			t.Fatalf("mosquitto_sub %s got a message on %q, want %q: %s", s.name, tp, topic, payload)
		}
		return payload
	case <-s.exited:
		t.Fatalf("mosquitto_sub %s exited waiting for a message on %s:\n%s", s.name, topic, s.out.From(0))
	case <-time.After(wait):
		t.Fatalf("mosquitto_sub %s: no message on %s within %s:\n%s", s.name, topic, wait, s.out.From(0))
	}
	return ""
}

// expectChat waits for a message on topic and decodes it as a delivered chat (the
// default json payload).
func (s *mqttSub) expectChat(t *testing.T, topic string) packet.Chat {
	t.Helper()
	payload := s.expect(t, topic)
	var c packet.Chat
	if err := json.Unmarshal([]byte(payload), &c); err != nil {
		t.Fatalf("payload on %s is not a chat: %v: %s", topic, err, payload)
	}
	return c
}

// mqttPub runs mosquitto_pub against addr as user (password "x" unless extra sets one).
func mqttPub(addr, user, topic, msg string, qos int, extra ...string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	args := []string{"-h", host, "-p", port, "-i", uid("pub-" + user), "-u", user, "-t", topic, "-m", msg, "-q", fmt.Sprint(qos)}
	if !containsArg(extra, "-P") {
		args = append(args, "-P", "x")
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mosquitto_pub", append(args, extra...)...)
	setPdeathsig(cmd)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustPub(t *testing.T, addr, user, topic, msg string, qos int, extra ...string) {
	t.Helper()
	if out, err := mqttPub(addr, user, topic, msg, qos, extra...); err != nil {
		t.Fatalf("mosquitto_pub %s → %s: %v\n%s", user, topic, err, out)
	}
}

func checkChat(t *testing.T, c *packet.Chat, from, content string, chatType int64) {
	t.Helper()
	if string(c.From) != from || c.Content != content || int64(c.ChatType) != chatType || c.ID == "" {
		t.Fatalf("chat %+v, want from %s content %q chatType %d", c, from, content, chatType)
	}
}

func TestMQTTPrivateChatWithTCPAndWebSocket(t *testing.T) {
	needMosquitto(t)
	g := mqttGateway(t)
	tcpUser, wsUser, mq := uid("tcp"), uid("ws"), uid("mq")
	tc := g.login(t, epTCP, tcpUser)
	wc := g.login(t, epWS, wsUser)
	sub := startSub(t, g.Addr, mq, []string{"inbox/" + mq})

	// TCP and WebSocket → MQTT (QoS 1 subscription).
	accepted(t)(tc.ChatTo(mq, "from tcp", wait))
	c := sub.expectChat(t, "inbox/"+mq)
	checkChat(t, &c, tcpUser, "from tcp", packet.ChatTypePrivate)
	accepted(t)(wc.ChatTo(mq, "from ws ✓", wait))
	c = sub.expectChat(t, "inbox/"+mq)
	checkChat(t, &c, wsUser, "from ws ✓", packet.ChatTypePrivate)

	// MQTT → TCP and WebSocket: QoS 0 and 1, text and JSON payloads, both topic names,
	// on the shared port and on the plugin's own port.
	tests := []struct {
		name, addr, topic, payload string
		qos                        int
		to                         *timclient.Conn
		content                    string
		msgType                    int64
	}{
		{"qos0 text to tcp", g.Addr, "chat/user/" + tcpUser, "hello tcp", 0, tc, "hello tcp", 0},
		{"qos1 text to ws", g.Addr, "chat/user/" + wsUser, "hello ws", 1, wc, "hello ws", 0},
		{"inbox alias", g.MQTTAddr, "inbox/" + tcpUser, "via own port", 1, tc, "via own port", 0},
		{"json body", g.Addr, "chat/user/" + wsUser, `{"content":"a picture","msgType":1,"extras":{"url":"http://x/y.png"}}`, 1, wc, "a picture", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustPub(t, tt.addr, mq, tt.topic, tt.payload, tt.qos)
			m := mustRecvChat(t, tt.to, tt.name)
			checkChat(t, m, mq, tt.content, packet.ChatTypePrivate)
			if int64(m.MsgType) != tt.msgType {
				t.Fatalf("msgType %d, want %d", m.MsgType, tt.msgType)
			}
		})
	}
}

// accepted returns mustAccepted for one chat answer: accepted(t)(c.ChatTo(...)).
func accepted(t *testing.T) func(*timclient.Response, error) {
	return func(r *timclient.Response, err error) {
		t.Helper()
		mustAccepted(t, r, err)
	}
}

func TestMQTTGroupChat(t *testing.T) {
	needMosquitto(t)
	g := mqttGateway(t)
	group, tcpUser, wsUser, mqSub, mqPub := uid("g"), uid("tcp"), uid("ws"), uid("mqs"), uid("mqp")
	tc := g.login(t, epTCP, tcpUser)
	wc := g.login(t, epWS, wsUser)
	mustJoin(t, tc, group, tcpUser)
	mustJoin(t, wc, group, wsUser)
	// Subscribing to the group joins it (cmd 7): the others see the notice.
	sub := startSub(t, g.Addr, mqSub, []string{"chat/group/" + group})
	mustNotice(t, tc, packet.CmdJoinGroupNotify, mqSub, group, tcpUser)

	accepted(t)(tc.ChatGroup(group, "tcp to the group", wait))
	c := sub.expectChat(t, "chat/group/"+group)
	checkChat(t, &c, tcpUser, "tcp to the group", packet.ChatTypeGroup)
	if string(c.GroupID) != group {
		t.Fatalf("groupId %q, want %q", c.GroupID, group)
	}
	mustRecvChat(t, wc, wsUser)

	// Publishing to a group one has not joined joins it first.
	mustPub(t, g.MQTTAddr, mqPub, "chat/group/"+group, "mqtt to the group", 1)
	for _, rc := range []*timclient.Conn{tc, wc} {
		m := mustRecvChat(t, rc, "group member")
		checkChat(t, m, mqPub, "mqtt to the group", packet.ChatTypeGroup)
	}
	c = sub.expectChat(t, "chat/group/"+group)
	checkChat(t, &c, mqPub, "mqtt to the group", packet.ChatTypeGroup)
}

func TestMQTTRefusals(t *testing.T) {
	needMosquitto(t)
	g := mqttGateway(t)
	me := uid("mq")
	t.Run("subscribe to another user's inbox and wildcards", func(t *testing.T) {
		s := startSubNoWait(t, g.Addr, me, []string{"inbox/someone-else", "chat/#"})
		select {
		case <-s.exited:
		case <-time.After(wait):
			t.Fatal("mosquitto_sub kept running with every subscription denied")
		}
		if out := s.out.From(0); !strings.Contains(out, "All subscription requests were denied") {
			t.Fatalf("mosquitto_sub output:\n%s", out)
		}
	})
	refused := []struct {
		name, topic, want string
		extra             []string
	}{
		{"topic outside the layout", "sensors/temp", "connection was lost", []string{"-q", "1"}},
		{"qos 2", "chat/user/" + me, "connection was lost", []string{"-q", "2"}},
		{"mqtt 5", "chat/user/" + me, "Unsupported Protocol Version", []string{"-V", "mqttv5"}},
		{"mqtt 3.1", "chat/user/" + me, "unacceptable protocol version", []string{"-V", "mqttv31"}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			out, err := mqttPub(g.Addr, me, tt.topic, "x", 0, tt.extra...) // a later -q wins
			if err == nil || !strings.Contains(out, tt.want) {
				t.Fatalf("mosquitto_pub: err %v, output %q, want failure with %q", err, out, tt.want)
			}
		})
	}
}

func TestMQTTOverTLSOnTheSharedPort(t *testing.T) {
	needMosquitto(t)
	g := mqttGateway(t)
	mq, tcpUser := uid("mqtls"), uid("tcp")
	tc := g.login(t, epTCP, tcpUser)
	tlsArgs := []string{"--cafile", certs.CertFile, "--insecure"} // --insecure: no host name check of 127.0.0.1
	sub := startSub(t, g.Addr, mq, []string{"chat/user/" + mq}, tlsArgs...)
	accepted(t)(tc.ChatTo(mq, "over tls", wait))
	c := sub.expectChat(t, "chat/user/"+mq)
	checkChat(t, &c, tcpUser, "over tls", packet.ChatTypePrivate)
	mustPub(t, g.Addr, mq, "chat/user/"+tcpUser, "back over tls", 1, tlsArgs...)
	checkChat(t, mustRecvChat(t, tc, tcpUser), mq, "back over tls", packet.ChatTypePrivate)
}

func TestMQTTLoginThroughTheGatewayAuthenticator(t *testing.T) {
	needMosquitto(t)
	g := startCodecGateway(t, "mqtt-jwt", "jwt", "", "")
	user, tcpUser := uid("mqjwt"), uid("tcp")
	tc := g.dial(t, epTCP)
	if _, err := tc.LoginToken(makeToken(t, jwtSecret, tcpUser, time.Now().Add(time.Hour)), wait); err != nil {
		t.Fatal(err)
	}
	out, err := mqttPub(g.Addr, user, "chat/user/"+tcpUser, "x", 1, "-P", "not-a-token")
	if err == nil || !strings.Contains(out, "bad user name or password") {
		t.Fatalf("bad credentials: err %v output %q, want CONNACK 4", err, out)
	}
	token := makeToken(t, jwtSecret, user, time.Now().Add(time.Hour))
	mustPub(t, g.Addr, user, "chat/user/"+tcpUser, "signed in with a token", 1, "-P", token)
	checkChat(t, mustRecvChat(t, tc, tcpUser), user, "signed in with a token", packet.ChatTypePrivate)
	// A token whose subject is not the user name is refused.
	out, err = mqttPub(g.Addr, "someone-else", "chat/user/"+tcpUser, "x", 1, "-P", token)
	if err == nil || !strings.Contains(out, "bad user name or password") {
		t.Fatalf("foreign token: err %v output %q", err, out)
	}
}

// rawMQTT is a minimal MQTT client for what mosquitto's clients cannot show: keepalive
// enforcement and packet-level answers.
type rawMQTT struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialMQTT(t *testing.T, addr, user string, keepAlive uint16) *rawMQTT {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawMQTT{t: t, nc: nc, br: bufio.NewReader(nc)}
	c.send(&mqtt.Packet{Type: mqtt.CONNECT, Connect: &mqtt.Connect{ProtocolName: "MQTT", Level: 4, CleanSession: true,
		KeepAlive: keepAlive, ClientID: uid("raw"), HasUsername: true, Username: user}})
	if p := c.recv(wait); p.Type != mqtt.CONNACK || p.ReturnCode != 0 {
		t.Fatalf("CONNECT answered %+v", p)
	}
	return c
}

func (c *rawMQTT) send(p *mqtt.Packet) {
	c.t.Helper()
	if _, err := c.nc.Write(mqtt.Encode(nil, p)); err != nil {
		c.t.Fatal(err)
	}
}

// recv reads one packet; Type 0 means the connection ended.
func (c *rawMQTT) recv(timeout time.Duration) mqtt.Packet {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	var buf []byte
	for {
		p, n, err := mqtt.Parse(buf, 0)
		if err != nil {
			c.t.Fatalf("server sent bad MQTT: %v", err)
		}
		if n > 0 {
			return p
		}
		b, err := c.br.ReadByte()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.t.Fatalf("no packet within %s", timeout)
			}
			return mqtt.Packet{}
		}
		buf = append(buf, b)
	}
}

func TestMQTTKeepalive(t *testing.T) {
	needMosquitto(t)
	g := mqttGateway(t)
	t.Run("pingreq", func(t *testing.T) {
		c := dialMQTT(t, g.MQTTAddr, uid("raw"), 60)
		c.send(&mqtt.Packet{Type: mqtt.PINGREQ})
		if p := c.recv(wait); p.Type != mqtt.PINGRESP {
			t.Fatalf("PINGREQ answered %+v", p)
		}
	})
	t.Run("silent client dropped after 1.5 keepalive", func(t *testing.T) {
		c := dialMQTT(t, g.MQTTAddr, uid("raw"), 1)
		start := time.Now()
		if p := c.recv(wait); p.Type != 0 {
			t.Fatalf("got %+v, want the connection closed", p)
		}
		if d := time.Since(start); d < 1400*time.Millisecond {
			t.Fatalf("closed after %s, before 1.5 × keepalive", d)
		}
	})
	t.Run("mosquitto_sub pings and stays", func(t *testing.T) {
		mq, tcpUser := uid("mqka"), uid("tcp")
		tc := g.login(t, epTCP, tcpUser)
		sub := startSub(t, g.Addr, mq, []string{"inbox/" + mq}, "-k", "5") // mosquitto's shortest
		deadline := time.Now().Add(wait)
		for !strings.Contains(sub.out.From(0), "received PINGRESP") {
			if time.Now().After(deadline) {
				t.Fatalf("no PINGRESP seen by mosquitto_sub:\n%s", sub.out.From(0))
			}
			time.Sleep(100 * time.Millisecond)
		}
		accepted(t)(tc.ChatTo(mq, "still there?", wait))
		c := sub.expectChat(t, "inbox/"+mq)
		checkChat(t, &c, tcpUser, "still there?", packet.ChatTypePrivate)
	})
}
