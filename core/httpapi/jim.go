package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/cloudwego/hertz/pkg/app"

	"github.com/timgw/timgw/core/packet"
)

// reasonJIMClose is the reason given to Gateway.Kick by /api/user/close.
const reasonJIMClose = "closed by the HTTP API"

// jimSend is POST /api/message/send: body a chat message; "from" is taken from the body
// (the caller holds an API key), the system user when absent.
func (s *Server) jimSend(_ context.Context, c *app.RequestContext) {
	body, e := s.readBody(c)
	if e != nil {
		s.fail(c, e)
		return
	}
	chat, err := decodeMessage(body, modeJIM)
	if err != nil {
		s.fail(c, asAPIError(err))
		return
	}
	from := string(chat.From)
	if from == "" {
		from = s.opts.SystemUser
	}
	s.writeJSON(c, http.StatusOK, s.send(from, chat))
}

// jimUserID reads J-IM's userid parameter from the query string or an urlencoded form
// body.
func (s *Server) jimUserID(c *app.RequestContext) (string, *apiError) {
	for _, k := range []string{"userid", "userId"} {
		if v := c.Query(k); v != "" {
			return v, nil
		}
	}
	if c.IsPost() && bytes.HasPrefix(c.Request.Header.ContentType(), []byte("application/x-www-form-urlencoded")) {
		body, e := s.readBody(c)
		if e != nil {
			return "", e
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return "", badBody("invalid form body: %v", err)
		}
		for _, k := range []string{"userid", "userId"} {
			if v := form.Get(k); v != "" {
				return v, nil
			}
		}
	}
	return "", badBody("missing parameter userid")
}

// jimPresence is the data of /api/user/online.
type jimPresence struct {
	UserID string `json:"userId"`
	Online bool   `json:"online"`
}

// jimOnline is GET|POST /api/user/online?userid=X: code 10019 when X is online, 10001
// when not.
func (s *Server) jimOnline(_ context.Context, c *app.RequestContext) {
	id, e := s.jimUserID(c)
	if e != nil {
		s.fail(c, e)
		return
	}
	n, ok := s.connections(c, id)
	if !ok {
		return
	}
	code := packet.StatusOffline
	if n > 0 {
		code = packet.StatusReceiverOnline
	}
	s.jimReply(c, packet.CmdGetUserResp, code, "", jimPresence{UserID: id, Online: n > 0})
}

// jimClose is GET|POST /api/user/close?userid=X: closes X's connections, code 10021.
func (s *Server) jimClose(_ context.Context, c *app.RequestContext) {
	id, e := s.jimUserID(c)
	if e != nil {
		s.fail(c, e)
		return
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	n, err := s.gw.Kick(ctx, id, reasonJIMClose)
	if err != nil {
		s.fail(c, gatewayError("user "+strconv.Quote(id), err))
		return
	}
	s.jimReply(c, packet.CmdCloseReq, packet.StatusCloseOK, "", kickResult{UserID: id, Closed: n})
}
