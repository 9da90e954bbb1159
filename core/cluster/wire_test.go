package cluster

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"strconv"
	"testing"

	"github.com/timgw/timgw/core/router"
)

func TestBatchRoundTrip(t *testing.T) {
	items := []item{
		{Kind: router.KindChat, Cmd: 11, Body: []byte(`{"cmd":11,"content":"hi"}`), Receivers: []string{"bob"}},
		{Kind: router.KindNotice, Cmd: 9, Body: []byte(`{"cmd":9}`), Receivers: []string{"a", "b", "c"}},
		{Kind: router.KindKick, Reason: "kicked by admin", Receivers: []string{"eve"}},
	}
	var batch []byte
	for _, it := range items {
		batch = appendItem(batch, it)
	}
	var got []item
	if err := decodeBatch(batch, func(it item) { got = append(got, it) }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, items) {
		t.Fatalf("decoded %+v\nwant %+v", got, items)
	}
}

func TestDecodeBatchRefusesDamage(t *testing.T) {
	good := appendItem(nil, item{Kind: router.KindChat, Cmd: 11, Body: []byte("x"), Receivers: []string{"u"}})
	cases := map[string][]byte{
		"truncated":      good[:len(good)-1],
		"unknown kind":   appendItem(nil, item{Kind: 9, Cmd: 11}),
		"bad tag":        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"length too big": {0x0a, 0x7f, 0x01},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			err := decodeBatch(b, func(item) {})
			if !errors.Is(err, errBadBatch) {
				t.Fatalf("decodeBatch: %v, want errBadBatch", err)
			}
		})
	}
	// Items before the damage are delivered.
	n := 0
	_ = decodeBatch(append(bytes.Clone(good), 0x0a, 0x7f), func(item) { n++ })
	if n != 1 {
		t.Errorf("items before the damage: %d, want 1", n)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(appendItem(nil, item{Kind: router.KindChat, Cmd: 11, Body: []byte("{}"), Receivers: []string{"a", "b"}}))
	f.Add(appendItem(appendItem(nil, item{Kind: router.KindKick, Reason: "x"}), item{Kind: router.KindNotice, Cmd: 9}))
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var items []item
		err := decodeBatch(b, func(it item) { items = append(items, it) })
		if err != nil {
			return
		}
		// What decodes re-encodes to a batch that decodes the same.
		var again []byte
		for _, it := range items {
			again = appendItem(again, it)
		}
		var back []item
		if err := decodeBatch(again, func(it item) { back = append(back, it) }); err != nil || len(back) != len(items) {
			t.Fatalf("re-encoded batch: %d items, %v; want %d", len(back), err, len(items))
		}
	})
}

func TestDirectory(t *testing.T) {
	d := newDirectory()
	d.set("u", "a", 2)
	d.set("u", "b", 1)
	d.set("v", "a", 1)
	if got := d.count("u"); got != 3 {
		t.Errorf("count(u) = %d, want 3", got)
	}
	d.set("u", "a", 1)
	d.set("u", "b", 0)
	got := map[string]int{}
	d.nodes("u", func(n string, c int) { got[n] = c })
	if !reflect.DeepEqual(got, map[string]int{"a": 1}) {
		t.Errorf("nodes(u) = %v, want a:1", got)
	}
	d.set("u", "a", 0)
	d.set("w", "c", 0) // dropping what is not there is a no-op
	if on := d.online(); !reflect.DeepEqual(on, []string{"v"}) {
		t.Errorf("online = %v, want [v]", on)
	}
}

// BenchmarkDirectoryMemory reports the heap one remote user costs in the directory (the
// capacity model of docs/cluster.md).
func BenchmarkDirectoryMemory(b *testing.B) {
	const users = 1_000_000
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		d := newDirectory()
		for u := 0; u < users; u++ {
			d.set("user"+strconv.Itoa(u), "node-b", 1)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/users, "B/user")
		runtime.KeepAlive(d)
	}
}
