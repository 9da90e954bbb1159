package storagebolt

// The write-ahead log. Append does not write chats into the B-trees: it assigns seqs and
// cursors, writes one record per chat to the current log segment and fdatasyncs it (one
// sequential write and one sync per group commit), and keeps the chats in memory (a
// generation). A background applier freezes the generation, starts a new segment, and
// writes the frozen chats into bbolt in one large transaction, so that the B-tree pages
// of a conversation or inbox are rewritten once for many chats instead of once per chat;
// once that transaction is durable, the old segment is removed. The bbolt file records
// the last applied log sequence number (LSN), so replaying a segment that was already
// applied (a crash between the commit and the removal) skips what it holds.
//
// Readers (Inbox, History) and the other writers (Confirm, Recall) first wait until
// everything appended before them is applied, and then work on bbolt alone.
//
// A segment is a sequence of records: 4 bytes length n, 4 bytes CRC-32C of the payload,
// n bytes payload = 8 bytes LSN, uvarint receiver count, per receiver a length-prefixed
// user and a uvarint cursor, then the Message (protobuf, seq assigned). Replay stops at the
// first record that is short or does not match its checksum (a write that was not synced,
// hence not acknowledged).

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

var (
	bMeta      = []byte("meta")
	kAppliedLS = []byte("applied-lsn")
	crcTable   = crc32.MakeTable(crc32.Castagnoli)
)

const (
	walPrefix = "wal-"
	walSuffix = ".log"
	// maxRecord bounds one record (a chat is at most a few MiB: MaxMessageBytes is 64 MiB).
	maxRecord = 128 << 20
)

// rec is one logged chat or recall event, as applied to bbolt.
type rec struct {
	lsn     uint64
	conv    string
	seq     int64
	dedup   []byte // pairKey(from, id) of a chat; nil for a recall event
	msg     []byte // the Message, protobuf
	recv    []string
	cursors []int64
	rf      bool // a read fan-out chat (Message.ReadFanout): no receivers, pulled by Inbox
}

// gen is the chats logged since the last freeze: the records, and what they changed
// (last seq per conversation, last cursor per user, results per (from, id)).
type gen struct {
	recs    []*rec
	seqs    map[string]int64
	cursors map[string]int64
	dedup   map[string]*pb.AppendResult
	seg     *segment
}

func newGen(seg *segment) *gen {
	return &gen{seqs: map[string]int64{}, cursors: map[string]int64{}, dedup: map[string]*pb.AppendResult{}, seg: seg}
}

// segment is one log file, written at off.
type segment struct {
	f    *os.File
	path string
	off  int64
}

func segmentName(firstLSN uint64) string {
	return fmt.Sprintf("%s%016x%s", walPrefix, firstLSN, walSuffix)
}

// createSegment creates the segment whose first record has firstLSN, durably (the
// directory entry is synced unless nosync).
func createSegment(dir string, firstLSN uint64, nosync bool) (*segment, error) {
	path := filepath.Join(dir, segmentName(firstLSN))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: create log segment: %w", err)
	}
	if !nosync {
		if err := syncDir(dir); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
	return &segment{f: f, path: path}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("storage-bolt: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("storage-bolt: sync %s: %w", dir, err)
	}
	return nil
}

// write appends b durably; on failure the segment is cut back to where it was, and
// fatal reports that even that failed (the segment may hold a partial write).
func (sg *segment) write(b []byte, nosync bool) (err error, fatal bool) {
	_, err = sg.f.WriteAt(b, sg.off)
	if err == nil && !nosync {
		err = fdatasync(sg.f)
	}
	if err != nil {
		if terr := sg.f.Truncate(sg.off); terr != nil {
			return fmt.Errorf("storage-bolt: write log: %v; and cannot cut it back: %w", err, terr), true
		}
		return fmt.Errorf("storage-bolt: write log: %w", err), false
	}
	sg.off += int64(len(b))
	return nil, false
}

// appendRec appends r's record to b.
func appendRec(b []byte, r *rec) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	b = appendU64(b, r.lsn)
	b = binary.AppendUvarint(b, uint64(len(r.recv)))
	for i, u := range r.recv {
		b = appendStr(b, u)
		b = binary.AppendUvarint(b, uint64(r.cursors[i]))
	}
	b = append(b, r.msg...)
	payload := b[start+8:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(payload, crcTable))
	return b
}

// parseRec decodes a record payload.
func parseRec(p []byte) (*rec, error) {
	if len(p) < 8 {
		return nil, errKey
	}
	r := &rec{lsn: binary.BigEndian.Uint64(p)}
	p = p[8:]
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)) {
		return nil, errKey
	}
	p = p[k:]
	for range n {
		u, rest, err := readStr(p)
		if err != nil {
			return nil, err
		}
		c, k := binary.Uvarint(rest)
		if k <= 0 {
			return nil, errKey
		}
		r.recv, r.cursors, p = append(r.recv, u), append(r.cursors, int64(c)), rest[k:]
	}
	m := &pb.Message{}
	if err := proto.Unmarshal(p, m); err != nil {
		return nil, err
	}
	r.msg, r.conv, r.seq, r.rf = slices.Clone(p), m.Conv, m.Seq, m.ReadFanout && m.Kind == storage.KindChat
	if m.Kind == storage.KindChat {
		r.dedup = pairKey(m.From, m.Id)
	}
	if r.conv == "" || r.seq <= 0 {
		return nil, errKey
	}
	return r, nil
}

// readSegment returns the intact records of a segment file, in order.
func readSegment(path string) ([]*rec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: read log %s: %w", path, err)
	}
	var out []*rec
	for len(data) >= 8 {
		n := binary.BigEndian.Uint32(data)
		if n > maxRecord || int(n) > len(data)-8 {
			break // torn tail
		}
		p := data[8 : 8+n]
		if crc32.Checksum(p, crcTable) != binary.BigEndian.Uint32(data[4:]) {
			break
		}
		r, err := parseRec(p)
		if err != nil {
			return nil, fmt.Errorf("storage-bolt: log %s: record with a valid checksum does not decode: %w", path, err)
		}
		out = append(out, r)
		data = data[8+n:]
	}
	return out, nil
}

// segments lists the log segments of dir, oldest first.
func segments(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: list %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, walPrefix) && strings.HasSuffix(n, walSuffix) && !e.IsDir() {
			out = append(out, filepath.Join(dir, n))
		}
	}
	slices.Sort(out) // fixed-width hex first LSN
	return out, nil
}
