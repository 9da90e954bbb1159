package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/timgw/timgw/core/packet"
	"github.com/timgw/timgw/core/router"
)

func TestServiceReceiptsAndConversations(t *testing.T) {
	sup := startBolt(t, t.TempDir(), nil)
	svc := NewService(sup)
	d := NewDeliverer(sup, &deliveries{})
	ctx := context.Background()
	for _, env := range []router.Envelope{
		privateEnv("alice", "bob", "m1", "one"),
		privateEnv("alice", "bob", "m2", "two"),
		privateEnv("carol", "bob", "m3", "three"),
	} {
		if _, err := d.Deliver(ctx, env); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct server times (ms): one conversation a page below
	}
	steps := []struct {
		name string
		q    ReceiptQuery
		want Cursor
		err  error
	}{
		{"delivered", ReceiptQuery{User: "bob", Peer: "alice", Delivered: 1}, Cursor{Delivered: 1}, nil},
		{"read implies delivered", ReceiptQuery{User: "bob", Peer: "alice", Read: 2}, Cursor{Delivered: 2, Read: 2}, nil},
		{"never lowered", ReceiptQuery{User: "bob", Peer: "alice", Delivered: 1, Read: 1}, Cursor{Delivered: 2, Read: 2}, nil},
		{"negative", ReceiptQuery{User: "bob", Peer: "alice", Read: -1}, Cursor{}, ErrInvalid},
	}
	for _, st := range steps {
		got, err := svc.Receipt(ctx, st.q)
		if !errors.Is(err, st.err) || (st.err == nil && err != nil) || got != st.want {
			t.Errorf("%s: %+v, %v; want %+v, %v", st.name, got, err, st.want, st.err)
		}
	}
	if _, err := svc.Receipt(ctx, ReceiptQuery{User: "bob", Read: 1}); err == nil {
		t.Error("a receipt without a conversation was accepted")
	}
	// bob's offline entries of alice's conversation are gone; carol's stays.
	off, err := svc.Offline(ctx, OfflineQuery{User: "bob"})
	if err != nil || len(off.Messages) != 1 || off.Messages[0].Peer != "carol" {
		t.Fatalf("bob's offline after the receipt: %+v, %v; want only carol's", off.Messages, err)
	}

	page, err := svc.Conversations(ctx, ConversationsQuery{User: "bob", Count: 1})
	if err != nil || len(page.Conversations) != 1 || page.Next == 0 {
		t.Fatalf("first page: %+v, %v; want one conversation and a next", page, err)
	}
	if c := page.Conversations[0]; c.Peer != "carol" || c.Unread != 1 || c.Last.ID != packet.Str("m3") || c.PeerCursor.Read != 1 {
		t.Errorf("newest conversation: %+v, want carol's, 1 unread, her read 1", c)
	}
	page, err = svc.Conversations(ctx, ConversationsQuery{User: "bob", Count: 1, Before: page.Next})
	if err != nil || len(page.Conversations) != 1 || page.Next != 0 {
		t.Fatalf("second page: %+v, %v; want the last one", page, err)
	}
	if c := page.Conversations[0]; c.Peer != "alice" || c.Unread != 0 || c.Mine != (Cursor{2, 2}) || c.PeerCursor != (Cursor{2, 2}) {
		t.Errorf("alice's conversation for bob: %+v", c)
	}
	if _, err := (Off{}).Conversations(ctx, ConversationsQuery{User: "bob"}); !errors.Is(err, ErrPersistenceOff) {
		t.Errorf("Off: %v", err)
	}
}
