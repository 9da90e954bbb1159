// Command codec-line is a minimal timgw codec plugin, and the template for new ones: a
// line-based text protocol that a person can speak with nc.
//
//	LOGIN <user> [password]    log in (must be the first line)
//	TO <user> <text>           private chat
//	GROUP <group> <text>       group chat
//	JOIN <group>               join a group
//	PING                       answered with PONG by the plugin itself
//	QUIT                       close
//
// The gateway's answers come back as "OK <code>" or "ERR <code> <message>", chats as
// "MSG <from> <text>" and "GROUP <group> <from> <text>", group notices as
// "JOINED <group> <user>" and "LEFT <group> <user>". When the plugin's process ends
// (a crash, a restart), the gateway sends its clients "ERR plugin restarting" and
// closes them.
package main

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/timgw/timgw/plugins/codec"
)

func main() { codec.Serve(&linePlugin{}) }

// goodbye is the line the host sends each client when this plugin's process ends.
const goodbye = "ERR plugin restarting\n"

// linePlugin is the plugin; all its methods run on one goroutine.
type linePlugin struct{ maxLine int }

// Init declares the protocol: connections whose first bytes are "LOGIN ".
func (p *linePlugin) Init(h codec.Hello) (codec.Info, error) {
	p.maxLine = max(h.MaxFrame, 1024)
	return codec.Info{Name: "line", Version: "1.0.0", Recognizer: codec.Recognizer{
		Rules: []codec.Rule{{Name: "LOGIN line", Steps: []codec.Step{codec.Text("LOGIN ")}}},
	}, Goodbye: []byte(goodbye)}, nil
}

// Open starts a connection's state: the bytes of an unfinished line.
func (p *linePlugin) Open(c codec.Conn) codec.ConnHandler { return &lineConn{c: c, max: p.maxLine} }

type lineConn struct {
	c   codec.Conn
	max int
	buf []byte
}

// Data splits the client's bytes into lines and runs each.
func (l *lineConn) Data(b []byte) {
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			if len(l.buf) > l.max {
				l.c.Write([]byte("ERR line too long\n"))
				l.c.Close("line: line too long")
			}
			return
		}
		line := strings.TrimRight(string(l.buf[:i]), "\r")
		l.buf = l.buf[i+1:]
		l.command(line)
	}
}

// command turns one line into a t-im packet for the gateway.
func (l *lineConn) command(line string) {
	verb, rest, _ := strings.Cut(line, " ")
	arg, text, _ := strings.Cut(rest, " ")
	switch strings.ToUpper(verb) {
	case "":
	case "LOGIN":
		l.emit(codec.CmdLoginReq, codec.Login{UserID: arg, Password: text})
	case "TO":
		l.emit(codec.CmdChatReq, codec.Chat{Cmd: 11, ChatType: codec.ChatPrivate, To: arg, Content: text})
	case "GROUP":
		l.emit(codec.CmdChatReq, codec.Chat{Cmd: 11, ChatType: codec.ChatGroup, GroupID: arg, Content: text})
	case "JOIN":
		l.emit(codec.CmdJoinGroupReq, codec.JoinGroup{GroupID: arg})
	case "PING":
		l.c.Write([]byte("PONG\n"))
	case "QUIT":
		l.c.Close("line: client sent QUIT")
	default:
		l.c.Write([]byte("ERR unknown command; use LOGIN, TO, GROUP, JOIN, PING, QUIT\n"))
	}
}

// emit hands a request to the gateway (the body types always marshal).
func (l *lineConn) emit(cmd codec.Cmd, body any) {
	if p, err := codec.Encode(cmd, body); err == nil {
		l.c.Emit(p)
	}
}

// Packet turns a packet from the gateway into a line for the client.
func (l *lineConn) Packet(p codec.Packet) {
	var out string
	switch p.Cmd {
	case codec.CmdChatReq:
		var m codec.Chat
		if codec.Decode(p, &m) != nil {
			return
		}
		if m.ChatType == codec.ChatGroup {
			out = fmt.Sprintf("GROUP %s %s %s", m.GroupID, m.From, oneLine(m.Content))
		} else {
			out = fmt.Sprintf("MSG %s %s", m.From, oneLine(m.Content))
		}
	case codec.CmdJoinGroupNotify, codec.CmdExitGroupNotify:
		var n codec.GroupNotice
		if codec.Decode(p, &n) != nil {
			return
		}
		verb := map[codec.Cmd]string{codec.CmdJoinGroupNotify: "JOINED", codec.CmdExitGroupNotify: "LEFT"}[p.Cmd]
		out = fmt.Sprintf("%s %s %s", verb, n.Group.GroupID, n.User.UserID)
	case codec.CmdHeartbeatReq:
		return
	default: // responses
		var r codec.Response
		if codec.Decode(p, &r) != nil {
			return
		}
		if r.Code.Success() {
			out = fmt.Sprintf("OK %d", r.Code)
		} else {
			out = fmt.Sprintf("ERR %d %s", r.Code, oneLine(r.Msg))
		}
	}
	l.c.Write([]byte(out + "\n"))
}

// Closed forgets the connection (nothing to release here).
func (l *lineConn) Closed(string) {}

// oneLine keeps a text on one line.
func oneLine(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }
