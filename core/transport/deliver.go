package transport

import (
	"errors"

	"github.com/timgw/timgw/core/codec"
)

// deliverDecoded queues decoded packets for the handler.
func (c *Conn) deliverDecoded(d *codec.Decoded) {
	if len(d.Packets) == 0 {
		return
	}
	c.srv.stats.PacketsIn.Add(uint64(len(d.Packets)))
	c.pushPackets(d.Packets)
}

// protocolError answers a protocol error when it can (write is the raw writer), records
// the reason and logs it.
func (c *Conn) protocolError(err error, write func([]byte)) {
	var perr *codec.Error
	if errors.As(err, &perr) {
		var out []byte
		if bp, _, _ := c.takeOut(); bp != nil {
			out = *bp
		}
		out = c.codec.Encode(out, perr.Packet())
		if g, ok := c.codec.(codec.Goodbyer); ok {
			out = g.Goodbye(out, perr.Msg)
		}
		write(out)
	}
	reason := "protocol error: " + err.Error()
	c.markClosing(reason)
	c.srv.log.Info("connection closed on protocol error", "conn", c.id, "proto", c.Protocol(), "remote", c.RemoteAddr(), "err", err)
}
