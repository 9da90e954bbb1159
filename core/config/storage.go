package config

// Storage configures the storage plugin that persists chats. Owned by the storage work;
// see plugins/storage/README.md.
type Storage struct {
}
