package timgw_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/sdk/go/timgw"
	"github.com/timgw/timgw/sdk/go/timgw/wire"
)

// Log in as alice, print what arrives, and send bob a message. (These examples need a
// gateway on localhost:8888, so they have no Output comment and are compiled, not run.)
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := timgw.Dial(ctx, "ws://localhost:8888/", timgw.Options{
		UserID: "alice",
		OnEvent: func(e timgw.Event) {
			switch e := e.(type) {
			case timgw.Message:
				fmt.Printf("%s: %s (offline %v)\n", e.From, e.Content, e.Offline)
			case timgw.Typing:
				fmt.Printf("%s is %s\n", e.From, e.State)
			case timgw.Closed:
				fmt.Printf("connection closed: %v (reconnecting: %v)\n", e.Err, e.WillReconnect)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ack, err := c.Chat(ctx, "bob", "hi bob")
	var refused *timgw.Error
	switch {
	case errors.As(err, &refused):
		log.Fatalf("refused with %d: %s", refused.Code, refused.Msg)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println("sent", ack.ID, "seq", ack.Seq, "kept for later:", ack.Code == packet.StatusOffline)
}

// An echo bot on t-im's TCP framing that answers every private message, reconnecting
// after 1 s, 2 s, 4 s, ... up to a minute when the gateway goes away.
func Example_echoBot() {
	var bot *timgw.Client
	ready := make(chan struct{})
	bot, err := timgw.Dial(context.Background(), "tcp://localhost:8888", timgw.Options{
		UserID:    "echo-bot",
		Reconnect: timgw.Backoff{Min: time.Second, Max: time.Minute},
		OnEvent: func(e timgw.Event) {
			m, ok := e.(timgw.Message)
			if !ok || m.ChatType != packet.ChatTypePrivate {
				return
			}
			<-ready
			if _, err := bot.Chat(context.Background(), m.From, "echo: "+m.Content); err != nil {
				log.Print(err)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	close(ready)
	select {} // serve forever
}

// Mark a conversation read up to a chat's seq, then list the conversations.
func ExampleClient_Receipt() {
	ctx := context.Background()
	c, err := timgw.Dial(ctx, "ws://localhost:8888/", timgw.Options{UserID: "bob"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Receipt(ctx, timgw.Peer("alice"), 0, 7); err != nil {
		log.Fatal(err)
	}
	list, _, err := c.Conversations(ctx, 20, 0)
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range list {
		fmt.Println(v.Type, v.Peer, v.GroupID, "unread", v.Unread)
	}
}

// The low-level connection: frames as they are, for tests and load generators.
func Example_wire() {
	c, err := wire.Dial("tcp://localhost:8888", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Login("alice", "x", 5*time.Second); err != nil {
		log.Fatal(err)
	}
	r, err := c.ChatTo("bob", "hi", 5*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Code)
}
