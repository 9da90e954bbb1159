package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// conversationsData is the data of a cmd 29 answer.
type conversationsData struct {
	Conversations []struct {
		Type          string      `json:"type"`
		Peer          string      `json:"peer"`
		GroupID       string      `json:"groupId"`
		Last          packet.Chat `json:"last"`
		LastSeq       int64       `json:"lastSeq"`
		Unread        int64       `json:"unread"`
		Delivered     int64       `json:"delivered"`
		Read          int64       `json:"read"`
		PeerDelivered *int64      `json:"peerDelivered"`
		PeerRead      *int64      `json:"peerRead"`
	} `json:"conversations"`
	Next int64 `json:"next"`
}

// receiptData is the data of a cmd 26 answer, and the body of cmd 27.
type receiptData struct {
	From      string `json:"from"`
	To        string `json:"to"`
	GroupID   string `json:"groupId"`
	Delivered int64  `json:"delivered"`
	Read      int64  `json:"read"`
}

// mustReceipt sends cmd 25 and requires 10000 with the cursors want (delivered, read).
func mustReceipt(t *testing.T, c *timclient.Conn, body map[string]any, want [2]int64) {
	t.Helper()
	r, err := c.Request(packet.CmdReceiptReq, body, wait)
	mustCode(t, fmt.Sprintf("receipt %v", body), r, err, packet.StatusOK)
	var d receiptData
	if err := r.DataInto(&d); err != nil || d.Delivered != want[0] || d.Read != want[1] {
		t.Fatalf("receipt %v: answer %s (%v), want delivered %d read %d", body, r.Data, err, want[0], want[1])
	}
}

// mustReceiptNotice waits for cmd 27 on c and checks who read what.
func mustReceiptNotice(t *testing.T, c *timclient.Conn, who string, want receiptData) {
	t.Helper()
	p, err := c.Expect(packet.CmdReceiptNotify, wait)
	if err != nil {
		t.Fatalf("%s: no receipt notice: %v", who, err)
	}
	var got receiptData
	if err := jsonUnmarshal(p.Body, &got); err != nil || got != want {
		t.Fatalf("%s: receipt notice %s, want %+v", who, p.Body, want)
	}
}

func mustConversations(t *testing.T, c *timclient.Conn, body map[string]any) conversationsData {
	t.Helper()
	r, err := c.Request(packet.CmdConversationsReq, body, wait)
	mustCode(t, fmt.Sprintf("conversations %v", body), r, err, packet.StatusOK)
	var d conversationsData
	if err := r.DataInto(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReceiptsAcrossDevices: bob (WebSocket, and a TCP device) reads alice's chats;
// alice's TCP and WebSocket devices and bob's other device get cmd 27; bob's offline
// queue no longer returns what his receipt confirmed; a device of alice that logs in
// later sees both sides' cursors and the unread counts through cmd 28; a group receipt
// reaches the members.
func TestReceiptsAcrossDevices(t *testing.T) {
	t.Parallel()
	g := startStorageGateway(t, "receipts", storageConfig(t, ""))
	alice, bob, carol, group := uid("rc-alice"), uid("rc-bob"), uid("rc-carol"), uid("rc-room")
	a1 := g.login(t, epTCP, alice)
	a2 := g.login(t, epWS, alice)
	b := g.login(t, epWS, bob)
	b2 := g.login(t, epTCP, bob)
	for i := 1; i <= 3; i++ {
		r, err := a1.Chat(packet.Chat{ID: packet.Str(fmt.Sprint("rc", i)), To: packet.Str(bob), ChatType: packet.ChatTypePrivate, Content: fmt.Sprint("m", i)}, wait)
		mustAccepted(t, r, err)
		mustRecvChat(t, b, "bob")
	}
	for _, c := range []*timclient.Conn{a1, a2, b2} {
		mustSync(t, c, "drain")
	}

	// bob read up to seq 2: both of alice's devices and bob's other device are told.
	mustReceipt(t, b, map[string]any{"to": alice, "read": 2}, [2]int64{2, 2})
	want := receiptData{From: bob, To: alice, Delivered: 2, Read: 2}
	mustReceiptNotice(t, a1, "alice (tcp)", want)
	mustReceiptNotice(t, a2, "alice (ws)", want)
	mustReceiptNotice(t, b2, "bob's other device (tcp)", want)
	mustNotGet(t, b, packet.CmdReceiptNotify, "the reading connection")
	// Cursors only go up.
	mustReceipt(t, b2, map[string]any{"to": alice, "delivered": 1}, [2]int64{2, 2})

	// The offline queue no longer returns what the receipt confirmed delivered.
	off := query(t, b, map[string]any{"type": 0}, packet.StatusGetOfflineMsgOK)
	if got := off.ids(); !slices.Equal(got, []string{"rc3"}) {
		t.Errorf("bob's offline messages after a receipt up to seq 2: %v, want [rc3]", got)
	}

	// A device of alice that logs in later sees bob's cursors.
	a3 := g.login(t, epTCP, alice)
	d := mustConversations(t, a3, map[string]any{})
	if len(d.Conversations) != 1 {
		t.Fatalf("alice's conversations: %+v, want the one with bob", d)
	}
	cv := d.Conversations[0]
	if cv.Type != "private" || cv.Peer != bob || cv.LastSeq != 3 || cv.Last.ID != "rc3" || cv.Unread != 0 ||
		cv.Read != 3 || cv.PeerRead == nil || *cv.PeerRead != 2 || *cv.PeerDelivered != 2 {
		t.Errorf("alice's view: %+v, want bob, last seq 3, nothing unread, read 3 (her own chats), bob's read 2", cv)
	}
	cv = mustConversations(t, b, map[string]any{}).Conversations[0]
	if cv.Peer != alice || cv.Unread != 1 || cv.Read != 2 || *cv.PeerRead != 3 {
		t.Errorf("bob's view: %+v, want 1 unread, read 2, alice's read 3", cv)
	}

	// A group: carol writes, bob has 2 unread, reads them, and the members are told.
	c := g.login(t, epWS, carol)
	for who, conn := range map[string]*timclient.Conn{alice: a1, bob: b, carol: c} {
		mustJoin(t, conn, group, who)
		mustSync(t, conn, who)
	}
	var last int64
	for i := 1; i <= 2; i++ {
		r, err := c.Chat(packet.Chat{ChatType: packet.ChatTypeGroup, GroupID: packet.Str(group), Content: fmt.Sprint("g", i)}, wait)
		mustAccepted(t, r, err)
		var ack storedAck
		if err := r.DataInto(&ack); err != nil {
			t.Fatal(err)
		}
		last = ack.Seq
	}
	list := mustConversations(t, b2, map[string]any{})
	if len(list.Conversations) != 2 || list.Conversations[0].GroupID != group || list.Conversations[0].Type != "group" ||
		list.Conversations[0].Unread != 2 || list.Conversations[1].Peer != alice {
		t.Fatalf("bob's conversations: %+v, want the group (2 unread) first, then alice", list)
	}
	mustSync(t, c, "carol")
	mustReceipt(t, b2, map[string]any{"groupId": group, "read": last}, [2]int64{last, last})
	mustReceiptNotice(t, c, "carol (a member)", receiptData{From: bob, GroupID: group, Delivered: last, Read: last})
	if cv := mustConversations(t, b, map[string]any{"limit": 1}); len(cv.Conversations) != 1 || cv.Conversations[0].Unread != 0 || cv.Next == 0 {
		t.Errorf("bob's first page of 1 after reading the group: %+v, want the group with 0 unread and a next", cv)
	} else if p2 := mustConversations(t, b, map[string]any{"limit": 1, "before": cv.Next}); len(p2.Conversations) != 1 || p2.Conversations[0].Peer != alice || p2.Next != 0 {
		t.Errorf("bob's second page: %+v, want alice, last page", p2)
	}

	// Refused receipts.
	for _, tc := range []struct {
		body map[string]any
		code packet.Status
	}{
		{map[string]any{"read": 1}, packet.StatusNoReceiver},
		{map[string]any{"groupId": uid("rc-other"), "read": 1}, packet.StatusNotGroupMember},
		{map[string]any{"to": alice, "read": "soon"}, packet.StatusInvalidBody},
	} {
		r, err := b.Request(packet.CmdReceiptReq, tc.body, wait)
		mustCode(t, fmt.Sprintf("receipt %v", tc.body), r, err, tc.code)
		if !strings.Contains(r.Command, "RECEIPT") {
			t.Errorf("refused receipt answered as %s", r.Command)
		}
	}
}
