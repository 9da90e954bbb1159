package integration

import (
	"net/http"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// TestDedicatedListeners starts a gateway with a dedicated port per protocol (tcp, ws,
// http, tls). On each port, a client of that protocol exchanges messages with a user on
// the shared port; the http port answers /health, and the tcp port does not speak HTTP.
func TestDedicatedListeners(t *testing.T) {
	t.Parallel()
	g := startTestGateway(t, "listeners", gwConfig{TLS: true, Listeners: []string{"tcp", "ws", "http", "tls"}})
	tcpAddr, wsAddr, httpAddr, tlsAddr := g.Listeners["tcp"], g.Listeners["ws"], g.Listeners["http"], g.Listeners["tls"]

	// both directions between a client on a dedicated port and one on the shared port
	exchange := func(t *testing.T, url string) {
		t.Helper()
		shared, dedicated := uid("l-shared"), uid("l-dedicated")
		sc := g.login(t, epTCP, shared)
		dc := dialURL(t, url)
		mustLogin(t, dc, dedicated)
		r, err := dc.ChatTo(shared, "from the dedicated port", wait)
		mustAccepted(t, r, err)
		checkDelivered(t, mustRecvChat(t, sc, "shared-port user"), dedicated, shared, "from the dedicated port")
		r, err = sc.ChatTo(dedicated, "to the dedicated port", wait)
		mustAccepted(t, r, err)
		checkDelivered(t, mustRecvChat(t, dc, "dedicated-port user"), shared, dedicated, "to the dedicated port")
	}
	// an API send on a dedicated port reaching a user on the shared port
	apiSend := func(t *testing.T, api *timclient.API) {
		t.Helper()
		defer api.CloseIdle()
		r, err := api.Get("/health")
		if err != nil || r.Status != http.StatusOK {
			t.Fatalf("GET /health: %v %v", r, err)
		}
		sender, receiver := uid("l-api"), uid("l-rcv")
		rc := g.login(t, epWS, receiver)
		mustAPISend(t, api, map[string]any{"from": sender, "to": receiver, "cmd": 11, "chatType": 2, "msgType": 0, "content": "via the API port"}, packet.StatusOK)
		checkDelivered(t, mustRecvChat(t, rc, "receiver"), sender, receiver, "via the API port")
	}

	t.Run("tcp port", func(t *testing.T) {
		t.Parallel()
		exchange(t, epTCP.url(tcpAddr, ""))
	})
	t.Run("tcp port refuses HTTP", func(t *testing.T) {
		t.Parallel()
		api := timclient.NewAPI("http://"+tcpAddr, testAPIKey, nil)
		api.Client.Timeout = 3 * time.Second
		defer api.CloseIdle()
		if r, err := api.Get("/health"); err == nil && r.Status == http.StatusOK {
			t.Errorf("GET /health on the dedicated tcp port answered %s", r)
		}
	})
	t.Run("ws port", func(t *testing.T) {
		t.Parallel()
		exchange(t, epWS.url(wsAddr, "/"))
	})
	t.Run("http port", func(t *testing.T) {
		t.Parallel()
		apiSend(t, timclient.NewAPI("http://"+httpAddr, testAPIKey, nil))
	})
	t.Run("tls port, TLS+TCP", func(t *testing.T) {
		t.Parallel()
		exchange(t, epTLS.url(tlsAddr, ""))
	})
	t.Run("tls port, wss", func(t *testing.T) {
		t.Parallel()
		exchange(t, epWSS.url(tlsAddr, "/"))
	})
	t.Run("tls port, https", func(t *testing.T) {
		t.Parallel()
		apiSend(t, timclient.NewAPI("https://"+tlsAddr, testAPIKey, certs.TLSConfig()))
	})
}

// TestShippedConfig starts the gateway with conf/timgw.yaml as shipped (with -listen):
// TCP login works, and the API takes the documented default key dev-api-key.
func TestShippedConfig(t *testing.T) {
	t.Parallel()
	g := startTestGateway(t, "shipped", gwConfig{File: "conf/timgw.yaml"})
	g.login(t, epTCP, uid("shipped"))
	api := timclient.NewAPI("http://"+g.Addr, "dev-api-key", nil)
	defer api.CloseIdle()
	r, err := api.Get("/api/user/online?userid=nobody")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusOK {
		t.Errorf("/api/user/online with dev-api-key: %s, want 200", r)
	}
}
