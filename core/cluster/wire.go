package cluster

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/timgw/timgw/core/router"
)

// item is one push as it crosses the bus to one node: the packet already encoded (once
// per push, whatever the number of nodes), and the receivers that node has.
type item struct {
	Kind      router.Kind
	Cmd       int
	Body      []byte
	Reason    string
	Receivers []string
}

// Field numbers of an item (protobuf wire format, so that other tools can read it).
const (
	fKind     = 1
	fCmd      = 2
	fBody     = 3
	fReason   = 4
	fReceiver = 5
	fItem     = 1 // a batch is a sequence of items, each field 1
)

// appendItem appends it to a batch.
func appendItem(batch []byte, it item) []byte {
	var b []byte
	b = protowire.AppendTag(b, fKind, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(it.Kind))
	b = protowire.AppendTag(b, fCmd, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(it.Cmd))
	if len(it.Body) > 0 {
		b = protowire.AppendTag(b, fBody, protowire.BytesType)
		b = protowire.AppendBytes(b, it.Body)
	}
	if it.Reason != "" {
		b = protowire.AppendTag(b, fReason, protowire.BytesType)
		b = protowire.AppendString(b, it.Reason)
	}
	for _, r := range it.Receivers {
		b = protowire.AppendTag(b, fReceiver, protowire.BytesType)
		b = protowire.AppendString(b, r)
	}
	batch = protowire.AppendTag(batch, fItem, protowire.BytesType)
	return protowire.AppendBytes(batch, b)
}

var errBadBatch = errors.New("malformed delivery batch")

// decodeBatch calls fn for every item of a batch (bytes from the bus). Body aliases
// batch. Unknown fields are skipped; a malformed batch is an error after the items
// before the damage.
func decodeBatch(batch []byte, fn func(item)) error {
	for len(batch) > 0 {
		num, typ, n := protowire.ConsumeTag(batch)
		if n < 0 {
			return fmt.Errorf("%w: %v", errBadBatch, protowire.ParseError(n))
		}
		batch = batch[n:]
		if num != fItem || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, batch); n < 0 {
				return fmt.Errorf("%w: %v", errBadBatch, protowire.ParseError(n))
			}
			batch = batch[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(batch)
		if n < 0 {
			return fmt.Errorf("%w: %v", errBadBatch, protowire.ParseError(n))
		}
		batch = batch[n:]
		it, err := decodeItem(v)
		if err != nil {
			return err
		}
		fn(it)
	}
	return nil
}

func decodeItem(b []byte) (item, error) {
	var it item
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return it, fmt.Errorf("%w: item: %v", errBadBatch, protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case (num == fKind || num == fCmd) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return it, fmt.Errorf("%w: item: %v", errBadBatch, protowire.ParseError(n))
			}
			b = b[n:]
			if v > 255 {
				return it, fmt.Errorf("%w: item: field %d value %d out of range", errBadBatch, num, v)
			}
			if num == fKind {
				it.Kind = router.Kind(v)
			} else {
				it.Cmd = int(v)
			}
		case (num == fBody || num == fReason || num == fReceiver) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return it, fmt.Errorf("%w: item: %v", errBadBatch, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case fBody:
				it.Body = v
			case fReason:
				it.Reason = string(v)
			default:
				it.Receivers = append(it.Receivers, string(v))
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return it, fmt.Errorf("%w: item: %v", errBadBatch, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	switch it.Kind {
	case router.KindChat, router.KindNotice, router.KindKick:
	default:
		return it, fmt.Errorf("%w: item of unknown kind %d", errBadBatch, it.Kind)
	}
	return it, nil
}
