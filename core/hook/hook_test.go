package hook

import (
	"context"
	"testing"

	"github.com/timgw/timgw/core/packet"
)

func TestNoopReturnsZeroReplies(t *testing.T) {
	var r Runner = Noop{}
	ctx := context.Background()
	if rep := r.Connect(ctx, &ConnectRequest{Addr: "1.2.3.4:5"}); rep.Deny {
		t.Errorf("connect %+v", rep)
	}
	if rep := r.Auth(ctx, &AuthRequest{Source: SourceLogin}); rep.Decision != AuthPass {
		t.Errorf("auth %+v", rep)
	}
	c := &packet.Chat{Content: "x"}
	if rep := r.Message(ctx, &MessageRequest{Chat: c}); rep.Action != MessagePass || rep.Changed != 0 || c.Content != "x" {
		t.Errorf("message %+v", rep)
	}
	if rep := r.Join(ctx, &JoinRequest{}); rep.Deny {
		t.Errorf("join %+v", rep)
	}
	r.Disconnect(ctx, &DisconnectEvent{})
	if st := (Noop{}).Status(); st != nil {
		t.Errorf("status %v", st)
	}
}

func TestNames(t *testing.T) {
	for a, want := range map[MessageAction]string{MessagePass: "pass", MessageRewrite: "rewrite", MessageReroute: "reroute", MessageReject: "reject", MessageDrop: "drop", 99: "unknown"} {
		if a.String() != want {
			t.Errorf("%d: %s", a, a)
		}
	}
	for d, want := range map[AuthDecision]string{AuthPass: "pass", AuthAccept: "accept", AuthReject: "reject", 9: "unknown"} {
		if d.String() != want {
			t.Errorf("%d: %s", d, d)
		}
	}
	if FailureStatus(SourceLogin) != packet.StatusLoginFailed || FailureStatus(SourceAuth) != packet.StatusAuthFailed {
		t.Error("FailureStatus")
	}
}
