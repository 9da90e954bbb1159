package scripttest

import (
	"context"
	"os"
	"strings"
	"testing"
)

func TestRunFilePasses(t *testing.T) {
	res, err := RunFile(context.Background(), "testdata/pass.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 7 {
		t.Fatalf("%d results, want 7", len(res))
	}
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Case, r.Err)
		}
	}
}

func TestRunDirReportsFailures(t *testing.T) {
	res, err := RunDir(context.Background(), "testdata/bad")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ file, cas, err string }{
		{"broken.yaml", "(load)", "broken.lua"},
		{"wrong.yaml", "expects a pass but the message is refused", "action reject, want pass (no shouting)"},
		{"wrong.yaml", "expects the wrong content", `content "HI!", want "hi"`},
		{"wrong.yaml", "no input", "no input"},
		{"wrong.yaml", "expects an extra field the script does not add", "extra.priority = high, want low"},
	}
	if len(res) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(res), len(want), res)
	}
	for i, w := range want {
		r := res[i]
		if !strings.HasSuffix(r.File, w.file) || r.Case != w.cas || r.Err == nil || !strings.Contains(r.Err.Error(), w.err) {
			t.Errorf("result %d: %s %q %v; want %s %q with an error containing %q", i, r.File, r.Case, r.Err, w.file, w.cas, w.err)
		}
	}
}

func TestRunFileRefusesBadFixtures(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"scripts: [x.lua]\nbogus: 1\n", "field bogus not found"},
		{"cases: []\n", "no scripts listed"},
		{"dir: nowhere\nscripts: [x.lua]\n", "scripts directory"},
	} {
		path := t.TempDir() + "/f.yaml"
		if err := writeFile(path, tc.body); err != nil {
			t.Fatal(err)
		}
		if _, err := RunFile(context.Background(), path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.body, err, tc.want)
		}
	}
}

func writeFile(path, body string) error { return os.WriteFile(path, []byte(body), 0o644) }
