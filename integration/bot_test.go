package integration

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/timgw/timgw/core/packet"
)

// TestAgentRoutingExample runs scripts/examples/agent_routing.lua end to end: a
// customer's question to the bot reaches an online agent while the customer's answer
// names only the bot; the agent's reply reaches the customer as the bot (tim.send with
// hooks.senders); and the conversation stored is customer<->bot, question and answer.
func TestAgentRoutingExample(t *testing.T) {
	t.Parallel()
	bot, customer, agent, other := uid("bot"), uid("ar-customer"), uid("ar-agent"), uid("ar-other")
	cfg := newLiveConfig(t, "agentrouting", gwConfig{})
	cfg.Set("hooks.dir", filepath.Join(moduleRoot, "scripts", "examples"))
	cfg.Set("hooks.watch", false)
	cfg.Set("hooks.scripts", []any{"agent_routing.lua"})
	cfg.Set("hooks.senders", []any{bot})
	cfg.Set("hooks.vars", map[string]any{"agent_routing": map[string]any{"bot": bot, "agents": []any{agent}, "idle": 60}})
	cfg.Write(t, byRename)
	g := startTestGateway(t, "agentrouting", gwConfig{File: cfg.Path})

	c := g.login(t, epTCP, customer)
	a := g.login(t, epWS, agent)
	o := g.login(t, epTCP, other)

	// The question: stored with the bot, delivered to the agent; the answer names the bot.
	r, err := c.ChatTo(bot, "where is my order?", wait)
	mustAccepted(t, r, err)
	var ack struct {
		To        string `json:"to"`
		Delivered int    `json:"delivered"`
	}
	if err := r.DataInto(&ack); err != nil || ack.To != bot || ack.Delivered != 1 {
		t.Fatalf("the customer's answer %+v (%v): want to %q (not the agent) and 1 delivery", ack, err, bot)
	}
	q := mustRecvChat(t, a, "the agent")
	if string(q.From) != customer || string(q.To) != bot || q.Content != "where is my order?" {
		t.Fatalf("the agent got %+v", q)
	}

	// The reply: the agent writes to the customer; the customer gets it from the bot.
	r, err = a.ChatTo(customer, "on its way", wait)
	mustAccepted(t, r, err)
	reply := mustRecvChat(t, c, "the customer")
	if string(reply.From) != bot || string(reply.To) != customer || reply.Content != "on its way" {
		t.Fatalf("the customer got %+v, want the reply from %s", reply, bot)
	}

	// Another user writing to the customer is not rerouted.
	r, err = o.ChatTo(customer, "hi", wait)
	mustAccepted(t, r, err)
	if m := mustRecvChat(t, c, "the customer"); string(m.From) != other {
		t.Fatalf("a chat from %s arrived from %s", other, m.From)
	}

	// The conversation stored is customer<->bot: the question and the answer.
	h := query(t, c, map[string]any{"type": 1, "fromUserId": bot}, packet.StatusGetHistoryOK)
	var contents []string
	for _, m := range h.Friends[bot] {
		contents = append(contents, m.Content)
	}
	if !slices.Equal(contents, []string{"where is my order?", "on its way"}) {
		t.Fatalf("history customer<->bot: %q, want the question and the answer", contents)
	}
	if h := query(t, c, map[string]any{"type": 1, "fromUserId": agent}, packet.StatusGetHistoryOK); len(h.ids()) != 0 {
		t.Fatalf("customer<->agent has %v, want nothing", h.ids())
	}
}
