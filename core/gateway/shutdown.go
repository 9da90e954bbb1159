package gateway

import (
	"github.com/timgw/timgw/core/packet"
)

// What the command layer answers while the gateway shuts down (docs/protocol.md,
// "Shutdown"). During the drain nothing changes; when the drain ends, core/app calls
// BeginShutdown and the transport sends every t-im TCP and WebSocket client
// ShutdownNotice, then closes each connection once its requests are answered.

// shutdownMsg is the msg of every shutdown answer and of the notice.
const shutdownMsg = "server shutting down: reconnect (to another node) and send again what got this answer"

// BeginShutdown makes the gateway refuse what it can no longer see through: from now on a
// chat is answered with cmd 12 code 10034 (neither stored nor delivered; its data names
// the chat's id, to be sent again after reconnecting), a login or auth with 10034 in
// cmd 6 or cmd 4. Commands being handled finish as usual; other commands are served.
func (g *Gateway) BeginShutdown() { g.stopping.Store(true) }

// ShutdownNotice is the goodbye sent to t-im TCP and WebSocket clients as the shutdown
// closes their connections: cmd 0 (COMMAND_ERROR, as for errors that belong to no
// request) with code 10034.
func ShutdownNotice() packet.Packet {
	return packet.ErrorPacket(packet.CmdError, packet.StatusServerBusy, shutdownMsg)
}

// shutdownRefusal is the data of a chat refused because of the shutdown.
type shutdownRefusal struct {
	ID string `json:"id,omitempty"`
}

// refuseStopping answers p with 10034 when it is a command the gateway no longer takes,
// and reports whether it did.
func (g *Gateway) refuseStopping(c Conn, p packet.Packet) bool {
	switch p.Cmd {
	case packet.CmdChatReq:
		var m packet.Chat
		_ = packet.Decode(p.Body, &m) // the id only, when it can be read
		r := packet.NewResponse(packet.CmdChatResp, packet.StatusServerBusy)
		r.Msg, r.Data = shutdownMsg, shutdownRefusal{ID: string(m.ID)}
		g.reply(c, r)
	case packet.CmdLoginReq, packet.CmdAuthReq:
		g.fail(c, p.Cmd.Response(), packet.StatusServerBusy, shutdownMsg)
	default:
		return false
	}
	return true
}
