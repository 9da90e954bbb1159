// Command bench measures chat throughput through the MQTT codec plugin against the
// built-in t-im TCP codec, in one run against one gateway process:
//
//	go run ./plugins/codec-mqtt/bench [-pairs 20] [-window 32] [-duration 5s]
//
// It builds timgw (or uses -bin), starts it with storage and hooks off (so that only the
// codec paths differ) and the MQTT plugin on the shared port, then for each protocol
// runs pairs of clients: a sender keeping up to -window chats unacknowledged (t-im:
// cmd 11 answered by cmd 12; MQTT: QoS 1 PUBLISH answered by PUBACK, which the plugin
// sends on the gateway's cmd 12) and a receiver counting deliveries (t-im cmd 11; MQTT
// PUBLISH QoS 0 on its inbox). It prints delivered chats per second, the gateway's and
// the plugin's CPU time per chat, and the MQTT/TCP ratio.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/timgw/timgw/plugins/codec"
	"github.com/timgw/timgw/plugins/codec-mqtt/mqtt"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	pairs, window    int
	warmup, duration time.Duration
	content          string
}

func run() error {
	bin := flag.String("bin", "", "timgw binary (default: go build ./cmd/timgw)")
	o := options{}
	flag.IntVar(&o.pairs, "pairs", 20, "sender/receiver pairs per protocol")
	flag.IntVar(&o.window, "window", 32, "unacknowledged chats per sender")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "traffic before measuring")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured traffic per protocol")
	size := flag.Int("size", 100, "chat content bytes")
	protos := flag.String("protos", "tcp,mqtt", "protocols to measure, in order")
	linger := flag.Duration("linger", 0, "codecs.plugins[].batch_linger")
	rounds := flag.Int("rounds", 1, "rounds of all protocols (alternating order); medians are reported")
	flag.Parse()
	o.content = strings.Repeat("x", *size)
	dir, err := os.MkdirTemp("", "timgw-mqtt-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if *bin == "" {
		*bin = filepath.Join(dir, "timgw")
		if out, err := exec.Command("go", "build", "-o", *bin, "./cmd/timgw").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/timgw (run from the module root): %v\n%s", err, out)
		}
	}
	gw, err := startGateway(*bin, dir, *linger)
	if err != nil {
		return err
	}
	defer gw.stop()
	fmt.Printf("pairs=%d window=%d content=%dB duration=%s GOMAXPROCS(host)=%s\n",
		o.pairs, o.window, *size, o.duration, os.Getenv("GOMAXPROCS"))
	fmt.Printf("gateway pid %d, plugin pid %d\n", gw.cmd.Process.Pid, gw.pluginPID())
	names := strings.Split(*protos, ",")
	rates := make(map[string][]float64)
	for r := range *rounds {
		order := slices.Clone(names)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, proto := range order {
			rate, err := measure(gw, proto, o)
			if err != nil {
				return fmt.Errorf("%s: %w", proto, err)
			}
			rates[proto] = append(rates[proto], rate)
		}
	}
	med := func(xs []float64) float64 {
		xs = slices.Clone(xs)
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	for _, p := range names {
		fmt.Printf("median %-4s %.0f msgs/s over %d rounds\n", p, med(rates[p]), len(rates[p]))
	}
	if len(names) == 2 {
		fmt.Printf("%s/%s = %.0f%% (medians)\n", names[1], names[0], 100*med(rates[names[1]])/med(rates[names[0]]))
	}
	return nil
}

// gateway is the timgw process under test.
type gateway struct {
	cmd  *exec.Cmd
	addr string
}

func startGateway(bin, dir string, linger time.Duration) (*gateway, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := fmt.Sprintf(`listen: %q
auth: {mode: open}
limits: {outbound_queue_bytes: 67108864, idle_timeout: 0s}
log: {level: warn}
storage: {plugin: none}
hooks: {enabled: false}
codecs:
  plugins:
    - name: mqtt
      builtin: codec-mqtt
      batch_linger: %s
      options: {retry_interval: 0s}
`, addr, linger)
	path := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	g := &gateway{cmd: exec.Command(bin, "-config", path), addr: addr}
	g.cmd.Dir, g.cmd.Stdout, g.cmd.Stderr = dir, os.Stderr, os.Stderr
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return g, nil
		}
		if time.Now().After(deadline) {
			g.stop()
			return nil, errors.New("gateway did not start")
		}
	}
}

func (g *gateway) stop() {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	_ = g.cmd.Wait()
}

// cpu returns the CPU time (user+system) of pid, from /proc.
func cpu(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
}

// pluginPID finds the gateway's MQTT plugin process.
func (g *gateway) pluginPID() int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), "codec-mqtt") && strings.Contains(string(cmdline), "__plugin\x00codec") {
			stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 1 && f[1] == strconv.Itoa(g.cmd.Process.Pid) {
				pid, _ := strconv.Atoi(e.Name())
				return pid
			}
		}
	}
	return 0
}

// client is one side of a pair, whatever the protocol.
type client interface {
	login(user string) error
	subscribe(user string) error
	send(to, content string) error
	// readLoop reads until the connection ends, calling ack for each acknowledged
	// chat and delivered for each delivered one.
	readLoop(ack, delivered func())
	close()
}

func dial(proto, addr string) (client, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if proto == "tcp" {
		return &timClient{nc: nc, w: bufio.NewWriter(nc), r: bufio.NewReaderSize(nc, 64<<10)}, nil
	}
	return &mqttClient{nc: nc, w: bufio.NewWriter(nc), r: bufio.NewReaderSize(nc, 64<<10)}, nil
}

func measure(gw *gateway, proto string, o options) (float64, error) {
	var delivered, acked atomic.Uint64
	var senders, receivers []client
	defer func() {
		for _, c := range append(senders, receivers...) {
			c.close()
		}
	}()
	run := fmt.Sprint(time.Now().UnixNano())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range o.pairs {
		from, to := fmt.Sprintf("%s-s%d-%s", proto, i, run), fmt.Sprintf("%s-r%d-%s", proto, i, run)
		rc, err := dial(proto, gw.addr)
		if err != nil {
			return 0, err
		}
		receivers = append(receivers, rc)
		if err := rc.login(to); err != nil {
			return 0, fmt.Errorf("receiver login: %w", err)
		}
		if err := rc.subscribe(to); err != nil {
			return 0, fmt.Errorf("subscribe: %w", err)
		}
		go rc.readLoop(func() {}, func() { delivered.Add(1) })
		sc, err := dial(proto, gw.addr)
		if err != nil {
			return 0, err
		}
		senders = append(senders, sc)
		if err := sc.login(from); err != nil {
			return 0, fmt.Errorf("sender login: %w", err)
		}
		window := make(chan struct{}, o.window)
		go sc.readLoop(func() { acked.Add(1); <-window }, func() {})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case window <- struct{}{}:
				case <-stop:
					return
				}
				if sc.send(to, o.content) != nil {
					return
				}
			}
		}()
	}
	time.Sleep(o.warmup)
	gwCPU, plCPU := cpu(gw.cmd.Process.Pid), cpu(gw.pluginPID())
	d0, t0 := delivered.Load(), time.Now()
	time.Sleep(o.duration)
	d1, el := delivered.Load(), time.Since(t0)
	gwCPU, plCPU = cpu(gw.cmd.Process.Pid)-gwCPU, cpu(gw.pluginPID())-plCPU
	close(stop)
	wg.Wait()
	n := d1 - d0
	if n == 0 {
		return 0, fmt.Errorf("nothing delivered (acked %d)", acked.Load())
	}
	rate := float64(n) / el.Seconds()
	line := fmt.Sprintf("%-4s delivered=%d in %s = %.0f msgs/s; gateway CPU %.1f us/msg", proto, n, el.Round(time.Millisecond), rate,
		float64(gwCPU.Microseconds())/float64(n))
	if proto == "mqtt" {
		line += fmt.Sprintf(", plugin CPU %.1f us/msg", float64(plCPU.Microseconds())/float64(n))
	}
	fmt.Println(line)
	return rate, nil
}

// timClient speaks t-im TCP: cmd (1 byte), length (4 bytes, big-endian), JSON body.
type timClient struct {
	nc net.Conn
	mu sync.Mutex
	w  *bufio.Writer
	r  *bufio.Reader
}

func (c *timClient) write(cmd codec.Cmd, v any) error {
	p, err := codec.Encode(cmd, v)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var hdr [5]byte
	hdr[0] = byte(p.Cmd)
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p.Body)))
	c.w.Write(hdr[:])
	c.w.Write(p.Body)
	return c.w.Flush()
}

func (c *timClient) read() (codec.Cmd, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
	_, err := io.ReadFull(c.r, body)
	return codec.Cmd(hdr[0]), body, err
}

func (c *timClient) login(user string) error {
	if err := c.write(codec.CmdLoginReq, codec.Login{UserID: user, Password: "x"}); err != nil {
		return err
	}
	cmd, body, err := c.read()
	if err == nil && (cmd != codec.CmdLoginResp || !strings.Contains(string(body), "10007")) {
		err = fmt.Errorf("login answered cmd %d %s", cmd, body)
	}
	return err
}

func (c *timClient) subscribe(string) error { return nil }

func (c *timClient) send(to, content string) error {
	return c.write(codec.CmdChatReq, codec.Chat{Cmd: 11, ChatType: codec.ChatPrivate, To: to, Content: content})
}

func (c *timClient) readLoop(ack, delivered func()) {
	for {
		cmd, _, err := c.read()
		if err != nil {
			return
		}
		switch cmd {
		case codec.CmdChatResp:
			ack()
		case codec.CmdChatReq:
			delivered()
		}
	}
}

func (c *timClient) close() { c.nc.Close() }

// mqttClient speaks MQTT 3.1.1 to the plugin.
type mqttClient struct {
	nc  net.Conn
	mu  sync.Mutex
	w   *bufio.Writer
	r   *bufio.Reader
	pid uint16
}

func (c *mqttClient) write(p *mqtt.Packet) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w.Write(mqtt.Encode(nil, p))
	return c.w.Flush()
}

func (c *mqttClient) read() (mqtt.Packet, error) {
	var hdr [5]byte
	b, err := c.r.ReadByte()
	if err != nil {
		return mqtt.Packet{}, err
	}
	hdr[0] = b
	n, rl := 1, 0
	for shift := 0; ; shift += 7 {
		if b, err = c.r.ReadByte(); err != nil {
			return mqtt.Packet{}, err
		}
		hdr[n] = b
		n++
		rl |= int(b&0x7F) << shift
		if b&0x80 == 0 {
			break
		}
	}
	buf := make([]byte, n+rl)
	copy(buf, hdr[:n])
	if _, err := io.ReadFull(c.r, buf[n:]); err != nil {
		return mqtt.Packet{}, err
	}
	p, _, err := mqtt.Parse(buf, 0)
	return p, err
}

func (c *mqttClient) login(user string) error {
	err := c.write(&mqtt.Packet{Type: mqtt.CONNECT, Connect: &mqtt.Connect{ProtocolName: "MQTT", Level: 4,
		CleanSession: true, ClientID: user, HasUsername: true, Username: user}})
	if err != nil {
		return err
	}
	p, err := c.read()
	if err == nil && (p.Type != mqtt.CONNACK || p.ReturnCode != 0) {
		err = fmt.Errorf("CONNECT answered %+v", p)
	}
	return err
}

func (c *mqttClient) subscribe(user string) error {
	err := c.write(&mqtt.Packet{Type: mqtt.SUBSCRIBE, PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "inbox/" + user}}})
	if err != nil {
		return err
	}
	p, err := c.read()
	if err == nil && (p.Type != mqtt.SUBACK || p.ReturnCodes[0] != 0) {
		err = fmt.Errorf("SUBSCRIBE answered %+v", p)
	}
	return err
}

func (c *mqttClient) send(to, content string) error {
	c.pid++
	if c.pid == 0 {
		c.pid = 1
	}
	return c.write(&mqtt.Packet{Type: mqtt.PUBLISH, QoS: 1, PacketID: c.pid, Topic: "chat/user/" + to, Payload: []byte(content)})
}

func (c *mqttClient) readLoop(ack, delivered func()) {
	for {
		p, err := c.read()
		if err != nil {
			return
		}
		switch p.Type {
		case mqtt.PUBACK:
			ack()
		case mqtt.PUBLISH:
			delivered()
		}
	}
}

func (c *mqttClient) close() { c.nc.Close() }
