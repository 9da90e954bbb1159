package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/cloudwego/hertz/pkg/app"

	"github.com/timgw/timgw/core/packet"
)

// envelope is the body of every /api/v1 answer.
type envelope struct {
	Code packet.Status `json:"code"`
	Msg  string        `json:"msg"`
	Data any           `json:"data"`
}

const contentTypeJSON = "application/json; charset=utf-8"

// writeJSON answers with v as JSON and the given HTTP status.
func (s *Server) writeJSON(c *app.RequestContext, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // messages quote <key> and content may hold markup
	err := enc.Encode(v)
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if err != nil {
		s.log.Error("encode response", "path", string(c.Path()), "err", err)
		status = http.StatusInternalServerError
		b = []byte(`{"code":10002,"msg":"cannot encode the response","data":null}`)
	}
	c.Data(status, contentTypeJSON, b)
}

// WriteError answers a net/http request (the admin endpoints) with an error in the
// shape of every API error: {"code":CODE,"msg":MSG,"data":null} with the HTTP status of
// code (HTTPStatus). A 401 carries WWW-Authenticate.
func WriteError(w http.ResponseWriter, code packet.Status, msg string) {
	b, _ := json.Marshal(envelope{Code: code, Msg: msg}) // strings and a number: cannot fail
	status := HTTPStatus(code)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="timgw"`)
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// ok answers a /api/v1 request that succeeded.
func (s *Server) ok(c *app.RequestContext, code packet.Status, data any) {
	s.writeJSON(c, http.StatusOK, envelope{Code: code, Msg: code.Text(), Data: data})
}

// fail answers a /api/v1 request with an error.
func (s *Server) fail(c *app.RequestContext, e *apiError) {
	if isJIM(c) {
		s.jimReply(c, jimCmd(c), e.Code, e.Msg, nil)
		return
	}
	s.writeJSON(c, httpStatus(e.Code), envelope{Code: e.Code, Msg: e.Msg})
}

// jimReply answers a J-IM compatibility request with a t-im response body. J-IM answered
// everything with HTTP 200 and the outcome in "code"; so does timgw, except for what
// J-IM did not have: a missing or wrong API key (401) and an oversized body (413).
func (s *Server) jimReply(c *app.RequestContext, cmd packet.Cmd, code packet.Status, msg string, data any) {
	r := packet.NewResponse(cmd, code)
	if msg != "" {
		r.Msg = msg
	}
	r.Data = data
	s.writeJSON(c, jimStatus(code), r)
}

func jimStatus(code packet.Status) int {
	switch code {
	case packet.StatusAuthFailed:
		return http.StatusUnauthorized
	case packet.StatusTooLarge:
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusOK
}

// HTTPStatus is the HTTP status of an API or admin answer with the given t-im code: the
// one status scheme of core/httpapi/README.md, "Answers".
func HTTPStatus(code packet.Status) int { return httpStatus(code) }

// httpStatus is HTTPStatus.
func httpStatus(code packet.Status) int {
	switch code {
	case packet.StatusOK, packet.StatusOffline, packet.StatusGetUserOK, packet.StatusGetOnlineOK,
		packet.StatusGetOfflineOK, packet.StatusLoginOK, packet.StatusAuthOK,
		packet.StatusJoinGroupOK, packet.StatusGetOfflineMsgOK, packet.StatusGetHistoryOK,
		packet.StatusReceiverOnline, packet.StatusCloseOK:
		return http.StatusOK
	case packet.StatusInvalidBody, packet.StatusNoReceiver, packet.StatusUnsupportedCmd,
		packet.StatusUnknownCmd, packet.StatusVersionMismatch, packet.StatusGetMessageFailed,
		packet.StatusMalformedFrame, packet.StatusInvalidUTF8:
		return http.StatusBadRequest
	case packet.StatusAuthFailed, packet.StatusNotLoggedIn:
		return http.StatusUnauthorized
	case packet.StatusNotGroupMember, packet.StatusForbidden, packet.StatusRejected,
		packet.StatusLoginFailed:
		return http.StatusForbidden
	case packet.StatusNotFound:
		return http.StatusNotFound
	case packet.StatusRecallWindowExpired:
		return http.StatusConflict
	case packet.StatusTooLarge:
		return http.StatusRequestEntityTooLarge
	case packet.StatusRateLimited:
		return http.StatusTooManyRequests
	case packet.StatusPersistenceOff:
		return http.StatusNotImplemented
	case packet.StatusStorageUnavailable, packet.StatusServerBusy:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// gatewayError turns an error from a Gateway method into an answer.
func gatewayError(what string, err error) *apiError {
	switch {
	case errors.Is(err, ErrNotFound):
		return &apiError{Code: packet.StatusNotFound, Msg: fmt.Sprintf("%s: not found", what)}
	case errors.Is(err, ErrPersistenceOff):
		return &apiError{Code: packet.StatusPersistenceOff, Msg: fmt.Sprintf("%s: persistence is off", what)}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &apiError{Code: packet.StatusServerBusy, Msg: fmt.Sprintf("%s: %v", what, err)}
	}
	return &apiError{Code: packet.StatusStorageUnavailable, Msg: fmt.Sprintf("%s: %v", what, err)}
}

// Request-context keys.
const (
	keyJIM = "timgw.httpapi.jim" // the J-IM command of a compatibility request
)

// markJIM is the middleware of the J-IM routes: errors on them are answered in J-IM's
// shape with command cmd.
func markJIM(cmd packet.Cmd) app.HandlerFunc {
	return func(ctx context.Context, c *app.RequestContext) {
		c.Set(keyJIM, cmd)
		c.Next(ctx)
	}
}

func isJIM(c *app.RequestContext) bool {
	_, ok := c.Get(keyJIM)
	return ok
}

func jimCmd(c *app.RequestContext) packet.Cmd {
	v, _ := c.Get(keyJIM)
	cmd, _ := v.(packet.Cmd)
	return cmd
}
