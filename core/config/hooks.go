package config

// Hooks configures the Lua hooks (core/lua). Owned by the Lua hooks work; see its README.
type Hooks struct {
}
