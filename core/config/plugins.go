package config

// Codecs configures codec plugins: protocols beyond the built-in ones, each served by a
// plugin subprocess. Owned by the codec plugin work; see plugins/README.md.
type Codecs struct {
}
