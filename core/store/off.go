package store

import (
	"context"
	"errors"

	"github.com/timgw/timgw/core/packet"
)

// ErrPersistenceOff is returned by Off for what needs storage (offline messages,
// history, recall); the client gets packet.StatusPersistenceOff.
var ErrPersistenceOff = errors.New("persistence is off: no storage is configured")

// Off is the storage of a gateway run with `storage.plugin: none`: a null object that
// answers queries with ErrPersistenceOff and remembers nothing, so that the command layer
// has no "is storage on" branches.
type Off struct{}

// Offline answers ErrPersistenceOff.
func (Off) Offline(context.Context, OfflineQuery) (OfflinePage, error) {
	return OfflinePage{}, ErrPersistenceOff
}

// History answers ErrPersistenceOff.
func (Off) History(context.Context, HistoryQuery) (HistoryPage, error) {
	return HistoryPage{}, ErrPersistenceOff
}

// Recall answers ErrPersistenceOff.
func (Off) Recall(context.Context, RecallQuery) (packet.Chat, bool, error) {
	return packet.Chat{}, false, ErrPersistenceOff
}

// Join remembers nothing.
func (Off) Join(context.Context, string, string, ...string) error { return nil }

// Leave forgets nothing.
func (Off) Leave(context.Context, string, string) error { return nil }

// RememberUser remembers nothing.
func (Off) RememberUser(context.Context, string, string, string) error { return nil }
