package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cloudwego/hertz/pkg/common/adaptor"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/app/server"
	"github.com/cloudwego/hertz/pkg/protocol"

	"github.com/timgw/timgw/core/packet"
)

// Reasons given to Gateway.Kick.
const (
	reasonJIMClose = "closed by the HTTP API"
	reasonKick     = "kicked by the HTTP API"
)

// drainLimit is how much of an oversized body is read and discarded so that the
// connection stays usable and the client reads the 413; beyond it the connection is
// closed instead.
const drainLimit = 256 << 10

// routes registers every endpoint on h.
func (s *Server) routes(h *server.Hertz) {
	h.Use(s.guard)
	h.NoRoute(s.notFound)
	for _, r := range s.opts.Extra {
		h.Handle(r.Method, r.Path, adaptor.HertzHandler(r.Handler))
	}
	h.NoMethod(s.methodNotAllowed)

	h.GET("/health", s.health)
	h.HEAD("/health", s.health)

	// J-IM compatibility.
	h.POST("/api/message/send", markJIM(packet.CmdChatResp), s.requireKey(true), s.jimSend)
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		h.Handle(m, "/api/user/online", markJIM(packet.CmdGetUserResp), s.requireKey(true), s.jimOnline)
		h.Handle(m, "/api/user/close", markJIM(packet.CmdCloseReq), s.requireKey(true), s.jimClose)
	}

	v1 := h.Group("/api/v1", s.requireKey(false))
	v1.POST("/messages", s.sendAsUser)
	v1.POST("/messages/system", s.sendAsSystem)
	v1.POST("/messages/recall", s.recall)
	v1.GET("/users", s.listUsers)
	v1.GET("/users/:id", s.getUser)
	v1.POST("/users/:id/kick", s.kickUser)
	v1.DELETE("/users/:id/connections", s.kickUser)
	v1.GET("/groups/:id/members", s.groupMembers)
	v1.GET("/stats", s.getStats)
}

// guard is the outermost middleware: it counts requests in progress for Shutdown,
// turns a panic into a 500, and writes the access log.
func (s *Server) guard(ctx context.Context, c *app.RequestContext) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in handler", "method", string(c.Method()), "path", string(c.Path()),
				"panic", r, "stack", string(debug.Stack()))
			c.Abort()
			c.Response.Reset()
			s.fail(c, &apiError{Code: packet.StatusSendFailed, Msg: "internal error"})
		}
		if s.closing.Load() {
			c.SetConnectionClose()
		}
		status := c.Response.StatusCode()
		level := slog.LevelDebug
		switch {
		case status >= 500:
			level = slog.LevelWarn
		case status >= 400:
			level = slog.LevelInfo
		}
		// The path only: a query string may carry an api_key.
		s.log.Log(ctx, level, "http request", "method", string(c.Method()), "path", string(c.Path()),
			"status", status, "duration", time.Since(start), "remote", c.RemoteAddr().String())
	}()
	c.Next(ctx)
}

// callCtx is the context of one Gateway call.
func (s *Server) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.baseCtx, s.opts.HandlerTimeout)
}

func (s *Server) health(_ context.Context, c *app.RequestContext) {
	if s.closing.Load() {
		s.writeJSON(c, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	if s.opts.Degraded != nil {
		if why := s.opts.Degraded(); why != "" {
			s.writeJSON(c, http.StatusOK, map[string]string{"status": "degraded", "reason": why})
			return
		}
	}
	s.writeJSON(c, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) notFound(_ context.Context, c *app.RequestContext) {
	s.fail(c, &apiError{Code: packet.StatusNotFound,
		Msg: fmt.Sprintf("no endpoint %s %s (see /api/v1/)", c.Method(), c.Path())})
}

func (s *Server) methodNotAllowed(_ context.Context, c *app.RequestContext) {
	s.writeJSON(c, http.StatusMethodNotAllowed, envelope{Code: packet.StatusInvalidBody,
		Msg: fmt.Sprintf("method %s is not allowed on %s", c.Method(), c.Path())})
}

// readBody returns the request body, at most MaxBodyBytes of it (413, code 10026, when
// there is more).
func (s *Server) readBody(c *app.RequestContext) ([]byte, *apiError) {
	limit := s.opts.MaxBodyBytes
	tooLarge := &apiError{Code: packet.StatusTooLarge,
		Msg: fmt.Sprintf("request body is over the limit of %d bytes", limit)}
	cl := c.Request.Header.ContentLength()
	if cl > limit {
		s.abandonBody(c, cl-limit > drainLimit)
		return nil, tooLarge
	}
	if !c.Request.IsBodyStream() {
		b := c.Request.Body()
		if len(b) > limit {
			return nil, tooLarge
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(c.RequestBodyStream(), int64(limit)+1))
	if err != nil {
		c.SetConnectionClose()
		return nil, badBody("cannot read the request body: %v", err)
	}
	if len(b) > limit {
		s.abandonBody(c, false)
		return nil, tooLarge
	}
	return b, nil
}

// abandonBody disposes of the unread rest of an oversized body: it reads and discards
// up to drainLimit bytes so that the client, still sending, gets to read the answer
// and may reuse the connection; a longer (or, with closeNow, a declared too long) body
// closes the connection after the answer instead.
func (s *Server) abandonBody(c *app.RequestContext, closeNow bool) {
	if !closeNow && c.Request.IsBodyStream() {
		_, err := io.CopyN(io.Discard, c.RequestBodyStream(), drainLimit+1)
		if errors.Is(err, io.EOF) {
			return
		}
	}
	c.SetConnectionClose()
	// Drop hertz's body stream: it would read the rest of the body before closing.
	c.Request.SetBodyStream(protocol.NoBody, 0)
}

// send hands a decoded chat to the gateway.
func (s *Server) send(from string, chat *packet.Chat) *packet.Response {
	ctx, cancel := s.callCtx()
	defer cancel()
	chat.From = packet.Str(from)
	resp := s.gw.Send(ctx, from, chat)
	if resp == nil {
		resp = packet.NewResponse(packet.CmdChatResp, packet.StatusSendFailed)
	}
	return resp
}

func asAPIError(err error) *apiError {
	var e *apiError
	if errors.As(err, &e) {
		return e
	}
	return badBody("%v", err)
}

// ---- J-IM compatibility ----

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
	ctx, cancel := s.callCtx()
	defer cancel()
	n, err := s.gw.Connections(ctx, id)
	if err != nil {
		s.fail(c, gatewayError("user "+strconv.Quote(id), err))
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

// ---- /api/v1 ----

// sendAsUser is POST /api/v1/messages: a chat message whose "from" names the sender.
func (s *Server) sendAsUser(_ context.Context, c *app.RequestContext) {
	chat, e := s.decodeV1Message(c)
	if e != nil {
		s.fail(c, e)
		return
	}
	if chat.From == "" {
		s.fail(c, badBody("field \"from\": required (the sending user id); use /api/v1/messages/system to send as the system"))
		return
	}
	s.replySend(c, s.send(string(chat.From), chat))
}

// sendAsSystem is POST /api/v1/messages/system: a chat message sent by the system user
// (any "from" in the body is replaced).
func (s *Server) sendAsSystem(_ context.Context, c *app.RequestContext) {
	chat, e := s.decodeV1Message(c)
	if e != nil {
		s.fail(c, e)
		return
	}
	s.replySend(c, s.send(s.opts.SystemUser, chat))
}

func (s *Server) decodeV1Message(c *app.RequestContext) (*packet.Chat, *apiError) {
	body, e := s.readBody(c)
	if e != nil {
		return nil, e
	}
	chat, err := decodeMessage(body, modeV1)
	if err != nil {
		return nil, asAPIError(err)
	}
	return chat, nil
}

func (s *Server) replySend(c *app.RequestContext, r *packet.Response) {
	msg := r.Msg
	if msg == "" {
		msg = r.Code.Text()
	}
	s.writeJSON(c, httpStatus(r.Code), envelope{Code: r.Code, Msg: msg, Data: r.Data})
}

// usersPage is the data of GET /api/v1/users.
type usersPage struct {
	Status string        `json:"status"`
	Total  int           `json:"total"`
	Offset int           `json:"offset"`
	Users  []packet.User `json:"users"`
}

// listUsers is GET /api/v1/users?status=online|offline|all&offset=&limit=.
func (s *Server) listUsers(_ context.Context, c *app.RequestContext) {
	var p Presence
	var code packet.Status
	switch st := c.Query("status"); st {
	case "", "online":
		p, code = PresenceOnline, packet.StatusGetOnlineOK
	case "offline":
		p, code = PresenceOffline, packet.StatusGetOfflineOK
	case "all":
		p, code = PresenceAll, packet.StatusGetUserOK
	default:
		s.fail(c, badBody("query parameter status: %q is not one of online, offline, all", st))
		return
	}
	offset, e := queryInt(c, "offset")
	if e != nil {
		s.fail(c, e)
		return
	}
	limit, e := queryInt(c, "limit")
	if e != nil {
		s.fail(c, e)
		return
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	users, err := s.gw.Users(ctx, p)
	if err != nil {
		s.fail(c, gatewayError(p.String()+" users", err))
		return
	}
	page := usersPage{Status: p.String(), Total: len(users), Offset: offset}
	users = users[min(offset, len(users)):]
	if limit > 0 && limit < len(users) {
		users = users[:limit]
	}
	page.Users = users
	if page.Users == nil {
		page.Users = []packet.User{}
	}
	s.ok(c, code, page)
}

// queryInt reads an optional non-negative integer query parameter (0 when absent).
func queryInt(c *app.RequestContext, name string) (int, *apiError) {
	v := c.Query(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, badBody("query parameter %s: %q is not a non-negative integer", name, v)
	}
	return n, nil
}

// pathID returns the :id of the route, or an error when it is empty.
func pathID(c *app.RequestContext, what string) (string, *apiError) {
	id := c.Param("id")
	if strings.TrimSpace(id) == "" {
		return "", badBody("%s id: must not be empty", what)
	}
	return id, nil
}

// userInfo is the data of GET /api/v1/users/{id}.
type userInfo struct {
	UserID      string `json:"userId"`
	Online      bool   `json:"online"`
	Connections int    `json:"connections"`
}

// getUser is GET /api/v1/users/{id}: whether the user is online, on how many
// connections.
func (s *Server) getUser(_ context.Context, c *app.RequestContext) {
	id, e := pathID(c, "user")
	if e != nil {
		s.fail(c, e)
		return
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	n, err := s.gw.Connections(ctx, id)
	if err != nil {
		s.fail(c, gatewayError("user "+strconv.Quote(id), err))
		return
	}
	s.ok(c, packet.StatusGetUserOK, userInfo{UserID: id, Online: n > 0, Connections: n})
}

// kickResult is the data of a kick.
type kickResult struct {
	UserID string `json:"userId"`
	Closed int    `json:"closed"`
}

// kickUser is POST /api/v1/users/{id}/kick and DELETE /api/v1/users/{id}/connections:
// closes all of the user's connections. The reason comes from ?reason= or a body
// {"reason": "..."}.
func (s *Server) kickUser(_ context.Context, c *app.RequestContext) {
	id, e := pathID(c, "user")
	if e != nil {
		s.fail(c, e)
		return
	}
	reason := c.Query("reason")
	body, e := s.readBody(c)
	if e != nil {
		s.fail(c, e)
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		var req struct {
			Reason string `json:"reason"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.fail(c, describeJSONError(body, err))
			return
		}
		if req.Reason != "" {
			reason = req.Reason
		}
	}
	if reason == "" {
		reason = reasonKick
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	n, err := s.gw.Kick(ctx, id, reason)
	if err != nil {
		s.fail(c, gatewayError("user "+strconv.Quote(id), err))
		return
	}
	s.ok(c, packet.StatusCloseOK, kickResult{UserID: id, Closed: n})
}

// groupInfo is the data of GET /api/v1/groups/{id}/members.
type groupInfo struct {
	GroupID string   `json:"groupId"`
	Total   int      `json:"total"`
	Members []string `json:"members"`
}

// groupMembers is GET /api/v1/groups/{id}/members.
func (s *Server) groupMembers(_ context.Context, c *app.RequestContext) {
	id, e := pathID(c, "group")
	if e != nil {
		s.fail(c, e)
		return
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	members, err := s.gw.GroupMembers(ctx, id)
	if err != nil {
		s.fail(c, gatewayError("group "+strconv.Quote(id), err))
		return
	}
	if members == nil {
		members = []string{}
	}
	s.ok(c, packet.StatusOK, groupInfo{GroupID: id, Total: len(members), Members: members})
}

// recallRequest is the body of POST /api/v1/messages/recall.
type recallRequest struct {
	From    string `json:"from"`    // the chat's sender
	ID      string `json:"id"`      // the chat's id
	To      string `json:"to"`      // the other user of a private conversation
	GroupID string `json:"groupId"` // or the group
	By      string `json:"by"`      // who asks (logged; default: the system user)
}

// recall is POST /api/v1/messages/recall: an administrator recalls a stored chat, with no
// recall window; online members of the conversation get cmd 16.
func (s *Server) recall(_ context.Context, c *app.RequestContext) {
	if s.recal == nil {
		s.fail(c, &apiError{Code: packet.StatusNotFound, Msg: "recall is not available"})
		return
	}
	body, e := s.readBody(c)
	if e != nil {
		s.fail(c, e)
		return
	}
	var req recallRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.fail(c, describeJSONError(body, err))
		return
	}
	if req.From == "" || req.ID == "" || (req.To == "") == (req.GroupID == "") {
		s.fail(c, &apiError{Code: packet.StatusInvalidBody, Msg: `recall needs "from", "id", and one of "to" or "groupId"`})
		return
	}
	if req.By == "" {
		req.By = s.opts.SystemUser
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	s.replySend(c, s.recal.Recall(ctx, req.From, req.ID, req.To, req.GroupID, req.By))
}

// getStats is GET /api/v1/stats, when the gateway implements StatsSource.
func (s *Server) getStats(_ context.Context, c *app.RequestContext) {
	if s.stats == nil {
		s.fail(c, &apiError{Code: packet.StatusNotFound, Msg: "stats are not available"})
		return
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	s.ok(c, packet.StatusOK, s.stats.Stats(ctx))
}
