package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// Cluster tests (docs/cluster.md): three real gateway processes joined over embedded
// NATS routes (once over an external nats-server process), sharing a MongoDB-protocol
// store. They need a MongoDB (CI runs FerretDB) named by TIMGW_MONGO_URI and skip
// without one.

// clusterAdminKey is the admin key of the cluster nodes.
const clusterAdminKey = "cluster-admin-key"

// clusterLease is the nodes' lease: a killed node's users go offline within it.
const clusterLease = time.Second

// mongoURI returns TIMGW_MONGO_URI, skipping t without it.
func mongoURI(t *testing.T) string {
	t.Helper()
	uri := os.Getenv("TIMGW_MONGO_URI")
	if uri == "" {
		t.Skip("TIMGW_MONGO_URI is not set: a cluster needs shared storage and there is no MongoDB to test against " +
			"(CI starts FerretDB: eval \"$(bash .ci/start-ferretdb.sh)\"; locally e.g. TIMGW_MONGO_URI=mongodb://127.0.0.1:27027/)")
	}
	return uri
}

// testCluster is a set of gateway nodes sharing one database, joined either over
// embedded NATS routes or through an external NATS server (urls).
type testCluster struct {
	name string
	uri  string
	db   string
	urls []string          // external NATS; empty: embedded servers with routes
	ids  []string          // node ids
	bus  map[string]string // node id → its embedded server's cluster_listen
	dir  string
	top  string // more top-level YAML for every node (a codecs section, say)

	mu    sync.Mutex
	nodes map[string]*gateway
}

// newCluster prepares (does not start) the nodes ids, with a database of their own
// that is dropped when t ends.
func newCluster(t *testing.T, name string, urls []string, ids ...string) *testCluster {
	t.Helper()
	uri := mongoURI(t)
	c := &testCluster{name: name, uri: uri, urls: urls, ids: ids, bus: map[string]string{}, dir: t.TempDir(),
		nodes: map[string]*gateway{},
		db:    fmt.Sprintf("timgwit_%s_%d_%d", name, os.Getpid(), idSeq.Add(1))}
	for _, id := range ids {
		a, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		c.bus[id] = a
	}
	t.Cleanup(func() { dropDatabase(t, uri, c.db) })
	return c
}

// dropDatabase removes a test database.
func dropDatabase(t *testing.T, uri, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Logf("drop database %s: %v", db, err)
		return
	}
	defer cl.Disconnect(ctx)
	if err := cl.Database(db).Drop(ctx); err != nil {
		t.Logf("drop database %s: %v", db, err)
	}
}

// config renders the configuration of a node called id whose embedded NATS server takes
// routes on clusterListen. storage is the storage section's body ("" for the cluster's
// mongo database).
func (c *testCluster) config(id, clusterListen, storage string) string {
	if storage == "" {
		storage = fmt.Sprintf("  plugin: mongo\n  mongo:\n    uri: %q\n    database: %q\n", c.uri, c.db)
	}
	var b strings.Builder
	b.WriteString(c.top)
	fmt.Fprintf(&b, `listen: "127.0.0.1:0"
auth:
  mode: open
api:
  keys: [%q]
admin:
  keys: [%q]
hooks:
  enabled: false   # no rate limit
log:
  level: debug
storage:
%scluster:
  enabled: true
  node_id: %s
  lease: %s
  nats:
`, testAPIKey, clusterAdminKey, storage, id, clusterLease)
	if len(c.urls) > 0 {
		fmt.Fprintf(&b, "    urls: [%s]\n", quoteAll(c.urls))
	} else {
		routes := make([]string, 0, len(c.ids))
		for _, peer := range c.ids {
			routes = append(routes, c.bus[peer])
		}
		fmt.Fprintf(&b, "    embedded:\n      cluster_listen: %q\n      routes: [%s]\n", clusterListen, quoteAll(routes))
	}
	return b.String()
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// writeConfig writes a node's configuration file and returns its path.
func (c *testCluster) writeConfig(t *testing.T, file, content string) string {
	t.Helper()
	path := filepath.Join(c.dir, file)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// launch starts node id (its configuration rewritten each time: a restart takes the
// same node id and NATS address) without failing t.
func (c *testCluster) launch(t *testing.T, id string) (*gateway, error) {
	path := c.writeConfig(t, id+".yaml", c.config(id, c.bus[id], ""))
	g, err := startGateway(c.name+"-"+id, gwConfig{File: path})
	if err != nil {
		return nil, err
	}
	g.attach(t)
	t.Cleanup(func() {
		if err := g.stop(); err != nil {
			t.Error(err)
		}
	})
	c.mu.Lock()
	c.nodes[id] = g
	c.mu.Unlock()
	return g, nil
}

// start starts the nodes ids (all of them when none are given) at once and waits until
// each is ready.
func (c *testCluster) start(t *testing.T, ids ...string) {
	t.Helper()
	if len(ids) == 0 {
		ids = c.ids
	}
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { _, errs[i] = c.launch(t, id) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// node returns the running node id.
func (c *testCluster) node(id string) *gateway {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// nodeStatus is a node in parts.cluster of /admin/status.
type nodeStatus struct {
	ID      string    `json:"id"`
	Self    bool      `json:"self"`
	Addr    string    `json:"addr"`
	Started time.Time `json:"started"`
	Users   int       `json:"users"`
}

// clusterStatus is parts.cluster of /admin/status.
type clusterStatus struct {
	NodeID string       `json:"node_id"`
	Bus    string       `json:"bus"`
	Nodes  []nodeStatus `json:"nodes"`
}

func (s *clusterStatus) ids() []string {
	out := make([]string, 0, len(s.Nodes))
	for _, n := range s.Nodes {
		out = append(out, n.ID)
	}
	slices.Sort(out)
	return out
}

func (s *clusterStatus) find(id string) *nodeStatus {
	for i := range s.Nodes {
		if s.Nodes[i].ID == id {
			return &s.Nodes[i]
		}
	}
	return nil
}

// statusOf reads parts.cluster of g's /admin/status.
func statusOf(g *gateway) (*clusterStatus, error) {
	api := timclient.NewAPI("http://"+g.Addr, "", nil)
	defer api.CloseIdle()
	r, err := api.Do(http.MethodGet, "/admin/status", nil, "X-Admin-Key", clusterAdminKey)
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /admin/status: %s", r)
	}
	var doc struct {
		Parts struct {
			Cluster *clusterStatus `json:"cluster"`
		} `json:"parts"`
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		return nil, fmt.Errorf("GET /admin/status: %w", err)
	}
	if doc.Parts.Cluster == nil {
		return nil, fmt.Errorf("GET /admin/status has no parts.cluster: %.1000s", r.Body)
	}
	return doc.Parts.Cluster, nil
}

// waitMembers waits until every node in on lists exactly the nodes want in its status.
func (c *testCluster) waitMembers(t *testing.T, on []string, want ...string) {
	t.Helper()
	slices.Sort(want)
	for _, id := range on {
		g := c.node(id)
		eventually(t, "node "+id+" lists the nodes "+strings.Join(want, ","), func() error {
			st, err := statusOf(g)
			if err != nil {
				return err
			}
			if st.NodeID != id || st.Bus != "connected" || !slices.Equal(st.ids(), want) {
				return fmt.Errorf("node_id %q, bus %q, nodes %v", st.NodeID, st.Bus, st.ids())
			}
			return nil
		})
	}
}

// v1Answer is an /api/v1 answer.
type v1Answer struct {
	Code packet.Status   `json:"code"`
	Msg  string          `json:"msg"`
	Data json.RawMessage `json:"data"`
}

// apiCall sends an /api/v1 request to g and decodes the answer.
func apiCall(g *gateway, method, path string, body any) (*v1Answer, error) {
	api := timclient.NewAPI("http://"+g.Addr, testAPIKey, nil)
	defer api.CloseIdle()
	r, err := api.Do(method, path, body)
	if err != nil {
		return nil, err
	}
	var a v1Answer
	if err := json.Unmarshal(r.Body, &a); err != nil {
		return nil, fmt.Errorf("%s %s: %s: %w", method, path, r, err)
	}
	return &a, nil
}

// mustAPI is apiCall requiring code want.
func mustAPI(t *testing.T, g *gateway, method, path string, body any, want packet.Status) *v1Answer {
	t.Helper()
	a, err := apiCall(g, method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	if a.Code != want {
		t.Fatalf("%s %s on %s: code %d %q, want %d", method, path, g.name, a.Code, a.Msg, want)
	}
	return a
}

// waitPresence waits until g's HTTP API says user is online (or offline).
func waitPresence(t *testing.T, g *gateway, user string, online bool) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s: %s online=%v", g.name, user, online), func() error {
		a, err := apiCall(g, http.MethodGet, "/api/v1/users/"+url.PathEscape(user), nil)
		if err != nil {
			return err
		}
		var d struct {
			Online bool `json:"online"`
		}
		if err := json.Unmarshal(a.Data, &d); err != nil {
			return fmt.Errorf("code %d data %s: %w", a.Code, a.Data, err)
		}
		if d.Online != online {
			return fmt.Errorf("data %s", a.Data)
		}
		return nil
	})
}

// waitGroupMembers waits until g lists want among the members of group.
func waitGroupMembers(t *testing.T, g *gateway, group string, want ...string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s: members of %s", g.name, group), func() error {
		a, err := apiCall(g, http.MethodGet, "/api/v1/groups/"+url.PathEscape(group)+"/members", nil)
		if err != nil {
			return err
		}
		var d struct {
			Members []string `json:"members"`
		}
		_ = json.Unmarshal(a.Data, &d)
		for _, u := range want {
			if !slices.Contains(d.Members, u) {
				return fmt.Errorf("code %d, members %v, want %v among them", a.Code, d.Members, want)
			}
		}
		return nil
	})
}

// TestCluster runs three nodes over embedded NATS routes and checks chats, group
// fan-out, presence, the HTTP API and kicks across them, then that a second process
// with a live node's id is refused.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "cl", nil, "a", "b", "c")
	// MQTT on the shared port of every node (plugins/codec-mqtt/README.md).
	c.top = "codecs:\n  plugins:\n    - name: mqtt\n      builtin: codec-mqtt\n"
	c.start(t)
	c.waitMembers(t, c.ids, c.ids...)
	a, b, cn := c.node("a"), c.node("b"), c.node("c")

	t.Run("parallel", func(t *testing.T) {
		t.Run("PrivateChat", func(t *testing.T) {
			t.Parallel()
			alice, bob := uid("clu-alice"), uid("clu-bob")
			ac := a.login(t, epTCP, alice)
			bc := b.login(t, epWS, bob)
			waitPresence(t, a, bob, true)
			waitPresence(t, b, alice, true)

			// alice (a, TCP) → bob (b, WebSocket): live, so 10000; from is the server's.
			forged := packet.Chat{From: "mallory", To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: "hi bob"}
			r, err := ac.Chat(forged, wait)
			mustAccepted(t, r, err)
			checkDelivered(t, mustRecvChat(t, bc, "bob"), alice, bob, "hi bob")

			// bob → alice.
			r, err = bc.ChatTo(alice, "hi alice", wait)
			mustAccepted(t, r, err)
			checkDelivered(t, mustRecvChat(t, ac, "alice"), bob, alice, "hi alice")
		})

		t.Run("GroupFanOut", func(t *testing.T) {
			t.Parallel()
			group := uid("clu-room")
			alice, bob, carol, dave := uid("clu-g-alice"), uid("clu-g-bob"), uid("clu-g-carol"), uid("clu-g-dave")
			a1 := a.login(t, epTCP, alice)
			a2 := cn.login(t, epWS, alice) // alice's second device, on another node
			bc := b.login(t, epWS, bob)
			cc := cn.login(t, epTCP, carol)
			mustJoin(t, a1, group, "alice")
			mustJoin(t, bc, group, "bob")
			mustNotice(t, a1, packet.CmdJoinGroupNotify, bob, group, "alice (a) about bob")
			mustJoin(t, cc, group, "carol")
			mustNotice(t, a1, packet.CmdJoinGroupNotify, carol, group, "alice (a) about carol")
			mustNotice(t, bc, packet.CmdJoinGroupNotify, carol, group, "bob (b) about carol")

			// dave joins on c: node c must know the members on a and b, and the
			// notice must reach them.
			waitGroupMembers(t, cn, group, alice, bob, carol)
			for _, u := range []string{alice, bob} {
				waitPresence(t, cn, u, true)
			}
			dc := cn.login(t, epTCP, dave)
			mustJoin(t, dc, group, "dave")
			mustNotice(t, a1, packet.CmdJoinGroupNotify, dave, group, "alice (a) about dave")
			mustNotice(t, bc, packet.CmdJoinGroupNotify, dave, group, "bob (b) about dave")
			mustNotice(t, cc, packet.CmdJoinGroupNotify, dave, group, "carol (c) about dave")

			// alice sends on a: bob (b), carol and dave (c) and alice's device on c get
			// it; the sending connection does not.
			waitGroupMembers(t, a, group, alice, bob, carol, dave)
			for _, u := range []string{bob, carol, dave} {
				waitPresence(t, a, u, true)
			}
			receivers := map[string]*timclient.Conn{"alice on c": a2, "bob": bc, "carol": cc, "dave": dc}
			for i, text := range []string{"hello all", "second"} {
				r, err := a1.ChatGroup(group, text, wait)
				mustAccepted(t, r, err)
				for who, conn := range receivers {
					// The next chat each one gets is this one: the first came once.
					m := mustRecvChat(t, conn, who)
					if m.Content != text || m.From != packet.Str(alice) || m.GroupID != packet.Str(group) {
						t.Errorf("message %d: %s got %s, want %q from %s in %s", i+1, who, jsonString(m), text, alice, group)
					}
				}
			}
			mustNotGet(t, a1, packet.CmdChatReq, "alice's sending connection")
			for who, conn := range receivers {
				mustNotGet(t, conn, packet.CmdChatReq, who)
			}
		})

		t.Run("Reads", func(t *testing.T) {
			t.Parallel()
			me, onB, onC := uid("clu-r-me"), uid("clu-r-b"), uid("clu-r-c")
			mc := a.login(t, epTCP, me)
			b.login(t, epTCP, onB)
			cc := cn.login(t, epWS, onC)
			for _, u := range []string{onB, onC} {
				waitPresence(t, a, u, true)
			}
			waitPresence(t, cn, me, true)
			waitPresence(t, cn, onB, true)

			// cmd 17 type 0 on a lists the users of b and c.
			r, users, err := mc.GetUsers(me, 0, wait)
			mustCode(t, "cmd 17 type 0", r, err, packet.StatusGetOnlineOK)
			var ids []string
			for _, u := range users {
				ids = append(ids, u.UserID)
			}
			for _, u := range []string{me, onB, onC} {
				if !slices.Contains(ids, u) {
					t.Errorf("cmd 17 type 0 on node a: %s missing from %v", u, ids)
				}
			}

			// GET /api/v1/users?status=online on c lists them all.
			ans := mustAPI(t, cn, http.MethodGet, "/api/v1/users?status=online", nil, packet.StatusGetOnlineOK)
			var list struct {
				Users []packet.User `json:"users"`
			}
			if err := json.Unmarshal(ans.Data, &list); err != nil {
				t.Fatal(err)
			}
			ids = ids[:0]
			for _, u := range list.Users {
				ids = append(ids, u.UserID)
			}
			for _, u := range []string{me, onB, onC} {
				if !slices.Contains(ids, u) {
					t.Errorf("GET /api/v1/users?status=online on node c: %s missing from %v", u, ids)
				}
			}

			// POST /api/v1/messages on c to a user on a.
			mustAPI(t, cn, http.MethodPost, "/api/v1/messages",
				map[string]any{"from": onC, "to": me, "chatType": 2, "content": "via http on c"}, packet.StatusOK)
			checkDelivered(t, mustRecvChat(t, mc, me), onC, me, "via http on c")

			// POST /api/v1/users/{id}/kick on b closes the connection on a.
			kick := mustAPI(t, b, http.MethodPost, "/api/v1/users/"+url.PathEscape(me)+"/kick",
				map[string]any{"reason": "cluster test"}, packet.StatusCloseOK)
			if _, err := mc.ExpectClosed(wait); err != nil {
				t.Errorf("%s on node a after a kick on node b (answer %s): %v", me, kick.Data, err)
			}
			waitPresence(t, cn, me, false)
			mustSync(t, cc, onC) // the others stay connected
		})
		t.Run("MQTT", func(t *testing.T) {
			t.Parallel()
			needMosquitto(t)
			tcpUser, mq, wsUser := uid("clu-m-tcp"), uid("clu-m-mq"), uid("clu-m-ws")
			tc := a.login(t, epTCP, tcpUser)
			wc := cn.login(t, epWS, wsUser)
			sub := startSub(t, b.Addr, mq, []string{"inbox/" + mq})
			waitPresence(t, a, mq, true)
			waitPresence(t, b, wsUser, true)

			// t-im TCP on a → MQTT on b: live (10000), on the subscriber's inbox topic.
			accepted(t)(tc.ChatTo(mq, "tcp on a to mqtt on b", wait))
			m := sub.expectChat(t, "inbox/"+mq)
			checkChat(t, &m, tcpUser, "tcp on a to mqtt on b", packet.ChatTypePrivate)

			// MQTT publish on b → WebSocket on c.
			mustPub(t, b.Addr, mq, "chat/user/"+wsUser, "mqtt on b to ws on c", 1)
			checkChat(t, mustRecvChat(t, wc, wsUser), mq, "mqtt on b to ws on c", packet.ChatTypePrivate)
		})

		t.Run("Recall", func(t *testing.T) {
			t.Parallel()
			alice, bob := uid("clu-rc-alice"), uid("clu-rc-bob")
			ac := a.login(t, epTCP, alice)
			a2 := cn.login(t, epWS, alice) // alice's second device, on a third node
			bc := b.login(t, epWS, bob)
			waitPresence(t, a, bob, true)
			waitPresence(t, b, alice, true)
			id := uid("clu-rc-msg")
			r, err := ac.Chat(packet.Chat{ID: packet.Str(id), To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: "oops"}, wait)
			mustAccepted(t, r, err)
			checkDelivered(t, mustRecvChat(t, bc, bob), alice, bob, "oops")

			// alice recalls it on a (cmd 15, docs/protocol.md): bob on b and alice's
			// device on c get cmd 16 with the chat marked recalled.
			r, err = ac.Request(packet.CmdCancelMsgReq, map[string]any{"id": id, "to": bob}, wait)
			mustCode(t, "recall on a", r, err, packet.StatusOK)
			for who, conn := range map[string]*timclient.Conn{"bob on b": bc, "alice's device on c": a2} {
				p, err := conn.Expect(packet.CmdCancelMsgResp, wait)
				if err != nil {
					t.Fatalf("%s: no recall notice: %v", who, err)
				}
				n, err := timclient.DecodeResponse(p)
				if err != nil {
					t.Fatalf("%s: recall notice %s: %v", who, p.Body, err)
				}
				var ev packet.Chat
				if err := n.DataInto(&ev); err != nil || string(ev.ID) != id || !ev.Recalled || ev.From != packet.Str(alice) {
					t.Errorf("%s: recall notice %s (%v), want chat %s from %s recalled", who, p.Body, err, id, alice)
				}
			}
		})
	})

	t.Run("DuplicateNodeID", func(t *testing.T) {
		// A second "a", with an embedded server of its own routed to the cluster.
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		path := c.writeConfig(t, "dup-a.yaml", c.config("a", addr, ""))
		g, err := startGateway("cl-dup-a", gwConfig{File: path})
		if err == nil {
			g.stop()
			st, _ := statusOf(a)
			t.Fatalf("a second node with node_id a started (node a's status now: %+v)", st)
		}
		named := false
		for line := range strings.Lines(err.Error()) {
			named = named || strings.Contains(line, "node_id") && strings.Contains(line, "in use") && strings.Contains(line, `"a"`)
		}
		if !named {
			t.Errorf("no line of the refusal says node_id \"a\" is in use:\n%v", err)
		}
		// The live node a is undisturbed.
		c.waitMembers(t, c.ids, c.ids...)
		x, y := uid("clu-d-x"), uid("clu-d-y")
		xc := a.login(t, epTCP, x)
		yc := b.login(t, epTCP, y)
		waitPresence(t, a, y, true)
		r, err := xc.ChatTo(y, "still one a", wait)
		mustAccepted(t, r, err)
		checkDelivered(t, mustRecvChat(t, yc, y), x, y, "still one a")
	})
}

// TestClusterNodeKill kills node b with SIGKILL while alice on a chats with bob on b
// and, meanwhile, loaders on a and c push chats at receivers on b as fast as a window
// of unanswered chats lets them: bob goes offline on a, alice's next chat is stored for
// him (10001), he reconnects to node c and finds every chat alice had acknowledged, and
// every chat of the load answered 10000 or 10001 was either received live on b or is in
// its receiver's offline inbox after reconnecting to c. Then b restarts with the same
// node id: the others see its new epoch, and its old users stay offline.
func TestClusterNodeKill(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "kill", nil, "a", "b", "c")
	c.start(t)
	c.waitMembers(t, c.ids, c.ids...)
	a, b, cn := c.node("a"), c.node("b"), c.node("c")
	alice, bob, idle := uid("kill-alice"), uid("kill-bob"), uid("kill-idle")
	ac := a.login(t, epTCP, alice)
	b.login(t, epWS, bob)
	b.login(t, epTCP, idle) // never reconnects
	for _, u := range []string{bob, idle} {
		waitPresence(t, a, u, true)
		waitPresence(t, cn, u, true)
	}
	var loads []*chatLoad
	for i := range clusterLoaders {
		from := a
		if i%2 == 1 {
			from = cn
		}
		ep := []endpoint{epTCP, epWS}[i%2]
		loads = append(loads, newChatLoad(t, from, b, ep, uid(fmt.Sprintf("kill-load%d", i))))
	}
	for _, l := range loads {
		waitPresence(t, l.from, l.receiver, true)
		waitPresence(t, l.from, l.sender, true)
	}
	stB, err := statusOf(a)
	if err != nil {
		t.Fatal(err)
	}
	oldB := stB.find("b")
	loadStart := time.Now()
	for _, l := range loads {
		l.start()
	}
	time.Sleep(time.Second) // a second of load before the kill

	// alice chats with bob until a says he is offline; b is killed meanwhile.
	type acked struct {
		id   string
		code packet.Status
	}
	var (
		mu     sync.Mutex
		acks   []acked
		errs   []string
		stop   = make(chan struct{})
		done   = make(chan struct{})
		enough = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r, err := ac.ChatTo(bob, fmt.Sprintf("chat %d", i), wait)
			mu.Lock()
			switch {
			case err != nil:
				errs = append(errs, fmt.Sprintf("chat %d: %v", i, err))
			case r.Code == packet.StatusOK || r.Code == packet.StatusOffline:
				var d ackData
				if err := r.DataInto(&d); err != nil || d.ID == "" {
					errs = append(errs, fmt.Sprintf("chat %d: answer data %s", i, r.Data))
				} else {
					acks = append(acks, acked{string(d.ID), r.Code})
					if len(acks) == 20 {
						close(enough)
					}
				}
			default:
				// Not acknowledged (e.g. storage busy): the sender knows it was not kept.
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-enough:
	case <-done:
	}
	if err := b.kill(); err != nil {
		t.Error(err)
	}
	waitPresence(t, a, bob, false)
	waitPresence(t, a, idle, false)
	close(stop)
	<-done
	for _, l := range loads {
		waitPresence(t, l.from, l.receiver, false)
	}
	time.Sleep(500 * time.Millisecond) // load to offline receivers too
	for _, l := range loads {
		l.stop()
	}
	loadTime := time.Since(loadStart)
	for _, l := range loads {
		l.wait(t)
	}
	mu.Lock()
	if len(errs) > 0 {
		t.Fatalf("alice's chats during the kill: %v", errs)
	}
	live := 0
	for _, k := range acks {
		if k.code == packet.StatusOK {
			live++
		}
	}
	t.Logf("%d chats acknowledged around the kill of b (%d of them as delivered live)", len(acks), live)
	if live == 0 {
		t.Errorf("no chat was delivered live to bob on b before the kill")
	}
	mu.Unlock()

	// bob is offline on a now: the chat is stored for him.
	r, err := ac.ChatTo(bob, "after the kill", wait)
	mustCode(t, "chat to bob after the kill", r, err, packet.StatusOffline)
	var last ackData
	if err := r.DataInto(&last); err != nil || last.ID == "" {
		t.Fatalf("10001 answer data %s: %v", r.Data, err)
	}
	acks = append(acks, acked{string(last.ID), r.Code})

	// bob reconnects to c and finds every acknowledged chat in his offline inbox.
	bc := cn.login(t, epTCP, bob)
	got := drainOffline(t, bc, bob)
	var lost []string
	for _, k := range acks {
		if !slices.Contains(got, k.id) {
			lost = append(lost, fmt.Sprintf("%s (%d)", k.id, k.code))
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged chats missing from bob's offline inbox on c: %v", len(lost), len(acks), lost)
	}
	waitPresence(t, a, bob, true)

	// Every load chat answered 10000 or 10001 was received live on b or is in the
	// receiver's offline inbox on c.
	var total, liveOK, offlineOK, onlyLive, notLive int
	for _, l := range loads {
		rc := cn.login(t, l.ep, l.receiver)
		inbox := drainOffline(t, rc, l.receiver)
		stored := make(map[string]bool, len(inbox))
		for _, id := range inbox {
			stored[id] = true
		}
		var lost []string
		for id, code := range l.acked {
			total++
			if code == packet.StatusOK {
				liveOK++
				if !l.live[id] {
					notLive++
				}
			} else {
				offlineOK++
			}
			switch {
			case stored[id]:
			case l.live[id]:
				onlyLive++
			default:
				lost = append(lost, fmt.Sprintf("%s (%d)", id, code))
			}
		}
		if len(lost) > 0 {
			slices.Sort(lost)
			t.Errorf("%s → %s: %d of %d acknowledged chats neither received live on b (%d were) nor in the offline inbox on c (%d there): %.2000v",
				l.sender, l.receiver, len(lost), len(l.acked), len(l.live), len(inbox), lost)
		}
		t.Logf("%s → %s: %d sent, %d acknowledged, %d received live, %d in the offline inbox", l.sender, l.receiver,
			l.sent.Load(), len(l.acked), len(l.live), len(inbox))
		if l.refused > 0 {
			t.Logf("%s: %d chats answered with another code (first: %s)", l.sender, l.refused, l.firstRefusal)
		}
	}
	// A 10000 after the kill and before b's lease ran out was pushed to a dead node: the
	// receiver finds it offline (docs/cluster.md, presence: leases and epochs).
	t.Logf("load: %d loaders, %d chats acknowledged in %s (%.0f/s; %d answered 10000, %d of them not received live; %d 10001; %d found only as received live)",
		len(loads), total, loadTime.Round(time.Millisecond), float64(total)/loadTime.Seconds(), liveOK, notLive, offlineOK, onlyLive)
	if liveOK == 0 || offlineOK == 0 {
		t.Errorf("the load saw %d chats delivered live and %d stored for offline receivers, want both", liveOK, offlineOK)
	}

	// b restarts with the same node id: a and c see a new b, and b's old user idle
	// stays offline everywhere.
	b2, err := c.launch(t, "b")
	if err != nil {
		t.Fatal(err)
	}
	c.waitMembers(t, c.ids, c.ids...)
	eventually(t, "node a sees b's restart", func() error {
		st, err := statusOf(a)
		if err != nil {
			return err
		}
		nb := st.find("b")
		if nb == nil || oldB == nil || !nb.Started.After(oldB.Started) {
			return fmt.Errorf("b then %+v, now %+v", oldB, nb)
		}
		return nil
	})
	carol := uid("kill-carol")
	cc := b2.login(t, epWS, carol)
	for _, g := range []*gateway{a, cn} {
		waitPresence(t, g, carol, true)
	}
	r, err = ac.ChatTo(carol, "welcome back b", wait)
	mustAccepted(t, r, err)
	checkDelivered(t, mustRecvChat(t, cc, carol), alice, carol, "welcome back b")
	for _, g := range []*gateway{a, b2, cn} {
		ans := mustAPI(t, g, http.MethodGet, "/api/v1/users/"+url.PathEscape(idle), nil, packet.StatusGetUserOK)
		var d struct {
			Online bool `json:"online"`
		}
		if err := json.Unmarshal(ans.Data, &d); err != nil || d.Online {
			t.Errorf("%s, after b restarted, says %s: %s (%v), want offline", g.name, idle, ans.Data, err)
		}
	}
}

// clusterLoaders is how many sender → receiver pairs load the cluster while a node is
// killed.
const clusterLoaders = 8

// clusterLoadWindow is how many chats a loader may have sent and not yet seen answered.
const clusterLoadWindow = 64

// chatLoad is one sender pushing private chats with ids of its own at one receiver,
// pipelined up to clusterLoadWindow unanswered chats, while the receiver records the
// chats it gets live until its connection ends.
type chatLoad struct {
	from, to         *gateway
	ep               endpoint // the receiver's
	sender, receiver string
	sc, rc           *timclient.Conn

	halt     chan struct{}
	sent     atomic.Int64
	window   chan struct{}
	sendDone chan struct{}
	ansDone  chan struct{}
	recvDone chan struct{}

	// Set by the goroutines, read after wait.
	acked        map[string]packet.Status // chat id → 10000 or 10001
	live         map[string]bool          // chat ids the receiver got live
	refused      int                      // answers with another code
	firstRefusal string

	mu   sync.Mutex
	errs []error
}

// fail records an error of one of l's goroutines.
func (l *chatLoad) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

// newChatLoad logs in a sender on from (t-im TCP) and a receiver on to (over ep).
func newChatLoad(t *testing.T, from, to *gateway, ep endpoint, name string) *chatLoad {
	t.Helper()
	l := &chatLoad{from: from, to: to, ep: ep, sender: name + "-s", receiver: name + "-r",
		halt: make(chan struct{}), window: make(chan struct{}, clusterLoadWindow),
		sendDone: make(chan struct{}), ansDone: make(chan struct{}), recvDone: make(chan struct{}),
		acked: map[string]packet.Status{}, live: map[string]bool{}}
	l.sc = from.login(t, epTCP, l.sender)
	l.rc = to.login(t, ep, l.receiver)
	return l
}

// start runs the sender, the reader of its answers and the receiver.
func (l *chatLoad) start() {
	go func() { // receiver: until its node dies
		defer close(l.recvDone)
		for {
			p, err := l.rc.Recv(time.Minute)
			if err != nil {
				if !errors.Is(err, timclient.ErrClosed) {
					l.fail(fmt.Errorf("receiver %s: %w", l.receiver, err))
				}
				return
			}
			if p.Cmd != packet.CmdChatReq {
				continue
			}
			m, err := timclient.DecodeChat(p)
			if err != nil {
				l.fail(fmt.Errorf("receiver %s: %w", l.receiver, err))
				return
			}
			l.live[string(m.ID)] = true
		}
	}()
	go func() { // sender
		defer close(l.sendDone)
		for i := 0; ; i++ {
			select {
			case <-l.halt:
				return
			case l.window <- struct{}{}:
			}
			id := fmt.Sprintf("%s-%d", l.sender, i)
			err := l.sc.Send(packet.CmdChatReq, packet.Chat{Cmd: packet.Int(packet.CmdChatReq), ID: packet.Str(id),
				To: packet.Str(l.receiver), ChatType: packet.ChatTypePrivate, Content: "load " + id})
			if err != nil {
				<-l.window
				l.fail(fmt.Errorf("sender %s: %w", l.sender, err))
				return
			}
			l.sent.Add(1)
		}
	}()
	go func() { // answers: until the sender stopped and every chat it sent is answered
		defer close(l.ansDone)
		for n := int64(0); ; n++ {
			for n == l.sent.Load() { // nothing unanswered
				select {
				case <-l.sendDone:
					if n == l.sent.Load() {
						return
					}
				case <-time.After(time.Millisecond):
				}
			}
			p, err := l.sc.Expect(packet.CmdChatResp, wait)
			if err != nil {
				l.fail(fmt.Errorf("sender %s, answer %d of %d sent: %w", l.sender, n+1, l.sent.Load(), err))
				return
			}
			<-l.window
			r, err := timclient.DecodeResponse(p)
			if err != nil {
				l.fail(fmt.Errorf("sender %s: %w", l.sender, err))
				return
			}
			var d ackData
			switch {
			case r.Code != packet.StatusOK && r.Code != packet.StatusOffline:
				if l.refused == 0 {
					l.firstRefusal = string(p.Body)
				}
				l.refused++
			case r.DataInto(&d) != nil || d.ID == "":
				l.fail(fmt.Errorf("sender %s: answer data %s", l.sender, r.Data))
			default:
				l.acked[string(d.ID)] = r.Code
			}
		}
	}()
}

// stop stops the sender.
func (l *chatLoad) stop() { close(l.halt) }

// wait waits for every answer and for the receiver's connection to end (its node was
// killed), failing t on errors of either.
func (l *chatLoad) wait(t *testing.T) {
	t.Helper()
	<-l.ansDone
	select {
	case <-l.recvDone:
	case <-time.After(wait):
		t.Fatalf("receiver %s: its connection to %s is still open", l.receiver, l.to.name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) > 0 {
		t.Fatalf("load %s → %s: %v", l.sender, l.receiver, l.errs)
	}
}

// TestClusterRefusesBolt checks that a cluster with bolt storage is refused at start,
// saying that a cluster needs shared storage.
func TestClusterRefusesBolt(t *testing.T) {
	t.Parallel()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{name: "bolt", ids: []string{"a"}, bus: map[string]string{"a": addr}, dir: t.TempDir()}
	storage := fmt.Sprintf("  plugin: bolt\n  dir: %q\n", filepath.Join(c.dir, "data"))
	path := c.writeConfig(t, "a.yaml", c.config("a", addr, storage))
	g, err := startGateway("cluster-bolt", gwConfig{File: path})
	if err == nil {
		g.stop()
		t.Fatal("a cluster node with storage.plugin bolt started")
	}
	if !strings.Contains(err.Error(), "shared storage") {
		t.Errorf("the refusal does not mention shared storage:\n%v", err)
	}
}

var (
	natsOnce sync.Once
	natsBin  string
	natsErr  error
)

// natsServer is the nats-server binary: $TIMGW_NATS_SERVER (.ci/run builds it), or built
// from the module cache (go.mod requires it) once per run.
func natsServer(t *testing.T) string {
	t.Helper()
	natsOnce.Do(func() {
		if p := os.Getenv("TIMGW_NATS_SERVER"); p != "" {
			natsBin = p
			return
		}
		natsBin = filepath.Join(workDir, "nats-server")
		build := exec.Command("go", "build", "-o", natsBin, "github.com/nats-io/nats-server/v2")
		build.Dir = moduleRoot
		if out, err := build.CombinedOutput(); err != nil {
			natsErr = fmt.Errorf("go build nats-server: %v\n%s", err, out)
		}
	})
	if natsErr != nil {
		t.Fatal(natsErr)
	}
	return natsBin
}

// startNATS runs a nats-server process on a free port until t ends and returns its URL.
func startNATS(t *testing.T) string {
	t.Helper()
	bin := natsServer(t)
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-a", host, "-p", port)
	var log logBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("nats-server log:\n%s", log.From(0))
		}
	})
	if err := waitDial(addr); err != nil {
		t.Fatalf("nats-server on %s: %v\n%s", addr, err, log.From(0))
	}
	return "nats://" + addr
}

// TestClusterExternalNATS runs two nodes on an external nats-server and chats across
// them.
func TestClusterExternalNATS(t *testing.T) {
	t.Parallel()
	mongoURI(t)
	c := newCluster(t, "ext", []string{startNATS(t)}, "a", "b")
	c.start(t)
	c.waitMembers(t, c.ids, c.ids...)
	a, b := c.node("a"), c.node("b")
	alice, bob := uid("ext-alice"), uid("ext-bob")
	ac := a.login(t, epWS, alice)
	bc := b.login(t, epTCP, bob)
	waitPresence(t, a, bob, true)
	waitPresence(t, b, alice, true)
	r, err := ac.ChatTo(bob, "over nats-server", wait)
	mustAccepted(t, r, err)
	checkDelivered(t, mustRecvChat(t, bc, bob), alice, bob, "over nats-server")
	r, err = bc.ChatTo(alice, "and back", wait)
	mustAccepted(t, r, err)
	checkDelivered(t, mustRecvChat(t, ac, alice), bob, alice, "and back")
}
