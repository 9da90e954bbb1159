package grafana

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// exported are the metrics of timgw's /metrics the dashboard may query, with their
// types: a histogram's series are NAME_bucket, NAME_sum and NAME_count. Keep this list
// in step with the gateway (core/metrics, core/lua, core/store, core/pluginhost,
// core/codecplugin, core/transport, core/cluster/metrics.go).
var exported = map[string]string{
	"timgw_connections":                     "gauge",
	"timgw_online_users":                    "gauge",
	"timgw_packets_total":                   "counter",
	"timgw_bytes_total":                     "counter",
	"timgw_chats_total":                     "counter",
	"timgw_chat_seconds":                    "histogram",
	"timgw_hook_duration_seconds":           "histogram",
	"timgw_hook_failures_total":             "counter",
	"timgw_storage_append_seconds":          "histogram",
	"timgw_storage_batch_size":              "histogram",
	"timgw_storage_batch_seconds":           "histogram",
	"timgw_storage_errors_total":            "counter",
	"timgw_plugin_restarts_total":           "counter",
	"timgw_plugin_state":                    "gauge",
	"timgw_plugin_hangs_total":              "counter",
	"timgw_codec_plugin_packets_total":      "counter",
	"timgw_hook_calls_total":                "counter",
	"timgw_connections_refused_total":       "counter",
	"timgw_cluster_batches_published_total": "counter",
	"timgw_cluster_bytes_published_total":   "counter",
	"timgw_cluster_items_published_total":   "counter",
	"timgw_cluster_items_dropped_total":     "counter",
	"timgw_cluster_items_received_total":    "counter",
	"timgw_cluster_malformed_total":         "counter",
	"timgw_cluster_presence_resyncs_total":  "counter",
	"timgw_cluster_nodes":                   "gauge",
	"timgw_cluster_bus_connected":           "gauge",
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

var metricName = regexp.MustCompile(`\btimgw_[a-z0-9_]+`)

// series maps a series name a query uses to the exported metric it belongs to ("" when
// none): histograms add _bucket, _sum and _count.
func series(name string) string {
	if _, ok := exported[name]; ok {
		return name
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] == "histogram" {
			return base
		}
	}
	return ""
}

func TestSeries(t *testing.T) {
	for name, want := range map[string]string{
		"timgw_chat_seconds_bucket":    "timgw_chat_seconds",
		"timgw_chat_seconds_count":     "timgw_chat_seconds",
		"timgw_connections":            "timgw_connections",
		"timgw_connections_bucket":     "", // a gauge has no buckets
		"timgw_chats":                  "",
		"timgw_storage_errors":         "",
		"timgw_plugin_state_sum":       "",
		"timgw_storage_batch_size_sum": "timgw_storage_batch_size",
	} {
		if got := series(name); got != want {
			t.Errorf("series(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestDashboardMetrics: timgw.json parses, every panel query names only exported
// metrics (a renamed or misspelt metric shows as an empty panel in Grafana), every
// exported metric is on the dashboard, and panel ids are unique.
func TestDashboardMetrics(t *testing.T) {
	data, err := os.ReadFile("timgw.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("timgw.json: %v", err)
	}
	if d.UID == "" {
		t.Error("the dashboard has no uid")
	}
	used := map[string]bool{}
	ids := map[int]string{}
	check := func(where, expr string) {
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: query %q names no timgw metric", where, expr)
		}
		for _, n := range names {
			base := series(n)
			if base == "" {
				t.Errorf("%s: %s is not an exported metric (query %q)", where, n, expr)
				continue
			}
			used[base] = true
		}
	}
	for _, p := range d.Panels {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panel id %d used by %q and %q", p.ID, prev, p.Title)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			check("panel "+p.Title, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			check("variable "+v.Name, v.Definition)
		}
	}
	var unused []string
	for name := range exported {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	slices.Sort(unused)
	if len(unused) > 0 {
		t.Errorf("exported metrics not on the dashboard: %v", unused)
	}
}
