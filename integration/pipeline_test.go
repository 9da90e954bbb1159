package integration

import (
	"fmt"
	"testing"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// TestPipelinedChats sends 300 stored chats on one connection without waiting for any
// answer (limits.pipelined_chats lets 32 be on their way to the store at once), then a
// history query: the acks (cmd 12) come in the order the chats were sent with seqs 1..300,
// the query is answered after the last ack and sees the last chat, and the receiver gets
// the chats in order.
func TestPipelinedChats(t *testing.T) {
	t.Parallel()
	g := startStorageGateway(t, "pipeline", storageConfig(t, ""))
	alice, bob := uid("pipe-alice"), uid("pipe-bob")
	b := g.login(t, epWS, bob)
	a := g.login(t, epTCP, alice)
	const n = 300
	for i := range n {
		if err := a.Send(packet.CmdChatReq, packet.Chat{Cmd: packet.Int(packet.CmdChatReq), ID: packet.Str(fmt.Sprintf("p%03d", i)),
			To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: fmt.Sprint("message ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	page := query(t, a, map[string]any{"userId": alice, "fromUserId": bob, "type": 1, "reverse": true, "count": 1}, packet.StatusGetHistoryOK)
	if ids := page.ids(); len(ids) != 1 || ids[0] != fmt.Sprintf("p%03d", n-1) {
		t.Errorf("history right after the chats: %v, want the last chat p%03d (the query must wait for the chats' store)", ids, n-1)
	}
	// Every ack arrived before the query's answer (Expect set them aside, in order).
	var acks []packet.Packet
	for _, p := range a.Pending() {
		if p.Cmd == packet.CmdChatResp {
			acks = append(acks, p)
		}
	}
	if len(acks) != n {
		t.Fatalf("%d acks before the history answer, want %d", len(acks), n)
	}
	for i, p := range acks {
		r, err := timclient.DecodeResponse(p)
		if err != nil {
			t.Fatal(err)
		}
		var ack storedAck
		_ = r.DataInto(&ack)
		if want := fmt.Sprintf("p%03d", i); r.Code != packet.StatusOK || ack.ID != want || ack.Seq != int64(i+1) {
			t.Fatalf("ack %d: code %d id %q seq %d, want 10000 %s seq %d (acks in send order)", i, r.Code, ack.ID, ack.Seq, want, i+1)
		}
	}
	for i := range n {
		c := mustRecvChat(t, b, bob)
		if want := fmt.Sprintf("p%03d", i); string(c.ID) != want || c.Seq != int64(i+1) {
			t.Fatalf("bob's chat %d is %s seq %d, want %s seq %d", i, c.ID, c.Seq, want, i+1)
		}
	}
}
