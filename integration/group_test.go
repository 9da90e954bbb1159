package integration

import (
	"testing"

	"github.com/timgw/timgw/core/packet"
	timclient "github.com/timgw/timgw/sdk/go/timgw/wire"
)

// mustJoin joins c to group and checks the cmd 8 answer: code 10011, result 1 and the
// group.
func mustJoin(t *testing.T, c *timclient.Conn, group, who string) {
	t.Helper()
	r, err := c.JoinGroup(group, wait)
	mustCode(t, who+" joining "+group, r, err, packet.StatusJoinGroupOK)
	if r.Result == nil || *r.Result != 1 {
		t.Errorf("%s joining %s: result %v, want 1", who, group, r.Result)
	}
	var gr packet.Group
	if err := jsonUnmarshal(r.Group, &gr); err != nil || gr.GroupID != group {
		t.Errorf("%s joining %s: group %s (%v), want groupId %q", who, group, r.Group, err, group)
	}
}

// mustNotice waits on c for a group notice of cmd (9 joined, 10 left) about user in
// group, skipping notices about others.
func mustNotice(t *testing.T, c *timclient.Conn, cmd packet.Cmd, user, group, who string) {
	t.Helper()
	for {
		p, err := c.Expect(cmd, wait)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		n, err := timclient.DecodeNotice(p)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if n.Group.GroupID != group {
			continue
		}
		if n.User.UserID == user {
			return
		}
		t.Logf("%s: skipping cmd %d about %q", who, cmd, n.User.UserID)
	}
}

// TestGroupChatFanOut sends group messages and checks that every connection of every
// member gets them, the sender's other connections included, and that neither the
// sending connection nor a non-member does.
func TestGroupChatFanOut(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	group := uid("fanout")
	alice, bob, carol, dave := uid("fan-alice"), uid("fan-bob"), uid("fan-carol"), uid("fan-dave")
	a1 := g.login(t, epTCP, alice)
	a2 := g.login(t, epWS, alice) // alice's second connection; only a1 joins
	b := g.login(t, epWS, bob)
	c := g.login(t, epTCP, carol)
	d := g.login(t, epTCP, dave) // not a member
	mustJoin(t, a1, group, "alice")
	mustJoin(t, b, group, "bob")
	mustJoin(t, c, group, "carol")

	conns := map[string]*timclient.Conn{"alice#1": a1, "alice#2": a2, "bob": b, "carol": c}
	for _, tc := range []struct {
		sender string // key of conns
		from   string
		body   map[string]any
	}{
		{sender: "alice#1", from: alice, body: map[string]any{"cmd": 11, "groupId": group, "chatType": 1, "msgType": 0}},
		{sender: "bob", from: bob, body: map[string]any{"cmd": "11", "groupId": group, "chatType": "1", "msgType": "0"}},
	} {
		t.Run("from "+tc.sender, func(t *testing.T) {
			content := "to the group from " + tc.sender
			tc.body["content"] = content
			r, err := conns[tc.sender].Request(packet.CmdChatReq, tc.body, wait)
			ack := mustAccepted(t, r, err)
			for name, conn := range conns {
				if name == tc.sender {
					continue
				}
				m := mustRecvChat(t, conn, name)
				if m.From != packet.Str(tc.from) || m.GroupID != packet.Str(group) ||
					m.ChatType != packet.ChatTypeGroup || m.Content != content || m.ID != ack.ID {
					t.Errorf("%s got %s, want from %q groupId %q chatType 1 id %q content %q",
						name, jsonString(m), tc.from, group, ack.ID, content)
				}
			}
			mustNotGet(t, conns[tc.sender], packet.CmdChatReq, "the sending connection")
			mustNotGet(t, d, packet.CmdChatReq, "non-member dave")
		})
	}
}

// TestGroupJoinAndLeaveNotices checks cmd 9 to online members when someone joins, and
// cmd 10 when a member's last connection closes (not when another one still remains).
func TestGroupJoinAndLeaveNotices(t *testing.T) {
	t.Parallel()
	g := mainGateway(t)
	group := uid("notice")
	alice, bob, carol := uid("ntc-alice"), uid("ntc-bob"), uid("ntc-carol")
	a := g.login(t, epTCP, alice)
	mustJoin(t, a, group, "alice")

	t.Run("join notice", func(t *testing.T) {
		b := g.login(t, epWS, bob)
		mustJoin(t, b, group, "bob")
		mustNotice(t, a, packet.CmdJoinGroupNotify, bob, group, "alice waiting for bob's join notice")

		t.Run("leave notice on close", func(t *testing.T) {
			b.Close()
			mustNotice(t, a, packet.CmdExitGroupNotify, bob, group, "alice waiting for bob's leave notice")
		})
	})

	t.Run("leave notice after the last connection", func(t *testing.T) {
		c1 := g.login(t, epTCP, carol)
		c2 := g.login(t, epWS, carol)
		mustJoin(t, c1, group, "carol")
		mustNotice(t, a, packet.CmdJoinGroupNotify, carol, group, "alice waiting for carol's join notice")

		// Close c1 through the server (cmd 14), so that its close is done when c1 sees it.
		if err := c1.Send(packet.CmdCloseReq, map[string]any{"userId": carol}); err != nil {
			t.Fatal(err)
		}
		if _, err := c1.ExpectClosed(wait); err != nil {
			t.Fatalf("carol's first connection: %v", err)
		}
		for _, p := range mustSync(t, a, "alice") {
			if p.Cmd != packet.CmdExitGroupNotify {
				continue
			}
			if n, err := timclient.DecodeNotice(p); err == nil && n.User.UserID == carol {
				t.Errorf("alice got a leave notice for carol while carol still has a connection: %s", p.Body)
			}
		}
		c2.Close()
		mustNotice(t, a, packet.CmdExitGroupNotify, carol, group, "alice waiting for carol's leave notice")
	})
}
