package webhook

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// spool is the queue directory: one segment file per batch of events, named by a
// sequence number ("00000000000000000042.jsonl"), one JSON event per line. A segment is
// written to a temporary file, fsynced and renamed, then the directory is fsynced: a
// segment is either whole or absent after a crash. Used by the spool goroutine (write)
// and under the dispatcher's lock (release).
type spool struct {
	dir  string
	next uint64
}

// segment is one file of the spool and how many of its events are still pending.
type segment struct {
	path string
	left int
}

const segmentExt = ".jsonl"

// openSpool creates dir when needed and removes temporary files a crash left behind.
func openSpool(dir string) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("webhook queue: %w", err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	for _, t := range tmps {
		_ = os.Remove(t)
	}
	return &spool{dir: dir, next: 1}, nil
}

// stored is an event read back from the spool.
type stored struct {
	ev   Event
	body []byte
	seg  *segment
}

// load reads every segment, oldest first. Lines that do not parse are skipped and
// counted in bad (a segment is written whole, so only a foreign file has them).
func (s *spool) load() (evs []stored, bad int, err error) {
	names, err := filepath.Glob(filepath.Join(s.dir, "*"+segmentExt))
	if err != nil {
		return nil, 0, fmt.Errorf("webhook queue: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		n, perr := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), segmentExt), 10, 64)
		if perr == nil && n >= s.next {
			s.next = n + 1
		}
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, bad, fmt.Errorf("webhook queue: %w", err)
		}
		seg := &segment{path: name}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, len(data)+1)
		for sc.Scan() {
			line := sc.Bytes()
			var ev Event
			if len(line) == 0 {
				continue
			}
			if json.Unmarshal(line, &ev) != nil || ev.ID == "" || ev.Type == "" {
				bad++
				continue
			}
			seg.left++
			evs = append(evs, stored{ev: ev, body: slices.Clone(line), seg: seg})
		}
		if seg.left == 0 {
			_ = os.Remove(name)
		}
	}
	return evs, bad, nil
}

// write persists bodies (one JSON event each, no newline inside) as a new segment.
func (s *spool) write(bodies [][]byte) (*segment, error) {
	var buf bytes.Buffer
	for _, b := range bodies {
		buf.Write(b)
		buf.WriteByte('\n')
	}
	name := filepath.Join(s.dir, fmt.Sprintf("%020d%s", s.next, segmentExt))
	s.next++
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("webhook queue: %w", err)
	}
	_, err = f.Write(buf.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("webhook queue: write segment: %w", err)
	}
	if d, err := os.Open(s.dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return &segment{path: name, left: len(bodies)}, nil
}

// release marks one event of seg settled, deleting the segment after its last one.
func (s *spool) release(seg *segment) error {
	if seg == nil {
		return nil
	}
	seg.left--
	if seg.left > 0 {
		return nil
	}
	if err := os.Remove(seg.path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("webhook queue: %w", err)
	}
	return nil
}
