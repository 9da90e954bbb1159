package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// WireVersion is the version of the frame format below, negotiated in the Hello call.
const WireVersion = 1

// Kind is the kind of a frame.
type Kind uint8

// Frame kinds. Host→plugin: Open, Data, Packet, Close. Plugin→host: Packet, Write,
// Close, Closed.
const (
	// KindOpen: a new connection (Remote, Transport).
	KindOpen Kind = 1
	// KindData: bytes the client sent (Data).
	KindData Kind = 2
	// KindPacket: host→plugin, a packet the gateway sends to the client; plugin→host, a
	// packet decoded from the client, for the gateway (Cmd, Data = JSON body).
	KindPacket Kind = 3
	// KindWrite: bytes to write to the client (Data).
	KindWrite Kind = 4
	// KindClose: host→plugin, the connection is gone; plugin→host, close it (Reason).
	KindClose Kind = 5
	// KindClosed: plugin→host, the plugin has forgotten a connection the host closed:
	// every packet it decoded from it was sent before this frame.
	KindClosed Kind = 6
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindOpen:
		return "open"
	case KindData:
		return "data"
	case KindPacket:
		return "packet"
	case KindWrite:
		return "write"
	case KindClose:
		return "close"
	case KindClosed:
		return "closed"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Frame is one decoded frame. Data aliases the batch it was decoded from.
//
// Layout: kind (1 byte), connection id (uvarint), then by kind:
//
//	open:   remote (uvarint length + bytes), transport (same)
//	data:   bytes (uvarint length + bytes)
//	packet: cmd (1 byte), body (uvarint length + bytes)
//	write:  bytes (uvarint length + bytes)
//	close:  reason (uvarint length + bytes)
//	closed: nothing more
type Frame struct {
	Kind      Kind
	Conn      uint64
	Cmd       Cmd
	Data      []byte
	Remote    string
	Transport string
	Reason    string
}

// ErrMalformed is wrapped by errors of frames that cannot be decoded.
var ErrMalformed = errors.New("malformed frame")

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendOpen appends an open frame.
func AppendOpen(b []byte, conn uint64, remote, transport string) []byte {
	b = append(b, byte(KindOpen))
	b = binary.AppendUvarint(b, conn)
	b = appendString(b, remote)
	return appendString(b, transport)
}

// AppendData appends a data frame (kind KindData or KindWrite).
func AppendData(b []byte, k Kind, conn uint64, data []byte) []byte {
	b = append(b, byte(k))
	b = binary.AppendUvarint(b, conn)
	return appendBytes(b, data)
}

// AppendPacket appends a packet frame.
func AppendPacket(b []byte, conn uint64, p Packet) []byte {
	b = append(b, byte(KindPacket))
	b = binary.AppendUvarint(b, conn)
	b = append(b, byte(p.Cmd))
	return appendBytes(b, p.Body)
}

// AppendClose appends a close frame.
func AppendClose(b []byte, conn uint64, reason string) []byte {
	b = append(b, byte(KindClose))
	b = binary.AppendUvarint(b, conn)
	return appendString(b, reason)
}

// AppendClosed appends a closed frame.
func AppendClosed(b []byte, conn uint64) []byte {
	b = append(b, byte(KindClosed))
	return binary.AppendUvarint(b, conn)
}

// frameSize bounds the encoded size of a frame with n bytes of payload.
func frameSize(n int) int { return 1 + 2*binary.MaxVarintLen64 + 1 + n }

func readBytes(b []byte) ([]byte, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, nil, fmt.Errorf("%w: bad length", ErrMalformed)
	}
	b = b[k:]
	if n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("%w: length %d beyond the batch (%d bytes left)", ErrMalformed, n, len(b))
	}
	return b[:n:n], b[n:], nil
}

// NextFrame decodes the frame at the front of b into f and returns the rest of b.
func NextFrame(b []byte, f *Frame) ([]byte, error) {
	*f = Frame{}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	f.Kind = Kind(b[0])
	id, k := binary.Uvarint(b[1:])
	if k <= 0 {
		return nil, fmt.Errorf("%w: bad connection id", ErrMalformed)
	}
	f.Conn = id
	b = b[1+k:]
	var err error
	var v []byte
	switch f.Kind {
	case KindOpen:
		if v, b, err = readBytes(b); err != nil {
			return nil, err
		}
		f.Remote = string(v)
		if v, b, err = readBytes(b); err != nil {
			return nil, err
		}
		f.Transport = string(v)
	case KindData, KindWrite:
		if f.Data, b, err = readBytes(b); err != nil {
			return nil, err
		}
	case KindPacket:
		if len(b) == 0 {
			return nil, fmt.Errorf("%w: packet without cmd", ErrMalformed)
		}
		f.Cmd = Cmd(b[0])
		if f.Data, b, err = readBytes(b[1:]); err != nil {
			return nil, err
		}
	case KindClose:
		if v, b, err = readBytes(b); err != nil {
			return nil, err
		}
		f.Reason = string(v)
	case KindClosed:
	default:
		return nil, fmt.Errorf("%w: unknown kind %d", ErrMalformed, f.Kind)
	}
	return b, nil
}

// Packet returns the packet a KindPacket frame carries.
func (f *Frame) Packet() Packet { return Packet{Cmd: f.Cmd, Body: f.Data} }
