package integration

import (
	"net/http"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/timgw/timgw/core/admin"
)

// TestBrowserDashboardRestartPlugin clicks the dashboard's restart button of a failed
// codec plugin: the page posts /admin/plugins/NAME/restart with the admin key and shows
// the answer.
func TestBrowserDashboardRestartPlugin(t *testing.T) {
	b := newBrowser(t)
	var mu sync.Mutex
	var asked []string
	status := map[string]any{
		"parts": map[string]any{
			"codecs":  []map[string]any{{"name": "mqtt", "state": "failed", "lastError": "crashed too often"}},
			"storage": map[string]any{"plugin": "bolt", "state": "running"},
		},
	}
	srv := httptestServer(t, admin.Handler(admin.Options{
		Keys:    func() []string { return []string{dashboardAdminKey} },
		Status:  func() any { return status },
		Reload:  func() (any, bool) { return map[string]any{"skipped": true}, true },
		Metrics: http.NotFoundHandler(),
		RestartPlugin: func(name string) (any, int) {
			mu.Lock()
			asked = append(asked, name)
			mu.Unlock()
			return map[string]any{"plugin": name, "ok": true}, http.StatusOK
		},
	}))
	page := b.newTab("restart")
	page.do("open /dashboard", chromedp.Navigate(srv+"/dashboard#key="+dashboardAdminKey))
	page.waitText("#state", "live")
	page.waitText(`[data-part="codecs"] button`, "Restart mqtt")
	page.waitText(`[data-part="storage"] button`, "Restart bolt")
	page.do("click Restart mqtt", chromedp.Click(chromedp.CSS(`[data-part="codecs"] button`)))
	page.waitText(`[data-part="codecs"] .chips`, "restarted")
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 1 || asked[0] != "mqtt" {
		t.Fatalf("restart requests %v, want [mqtt]", asked)
	}
}
