package httpapi

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/cloudwego/hertz/pkg/app"

	"github.com/timgw/timgw/core/packet"
)

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
