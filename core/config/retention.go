package config

import (
	"errors"
	"time"
)

// Retention configures how long stored messages are kept (storage.retention, see
// docs/storage.md#retention-and-erasure). A period of 0 keeps a kind of conversation
// forever (the default); otherwise a background janitor removes its messages older than
// the period, every Interval, in batches of at most Batch messages.
type Retention struct {
	// Private is how long chats of private conversations are kept (0: forever).
	Private time.Duration `yaml:"private"`
	// Group is how long chats of group conversations are kept (0: forever).
	Group time.Duration `yaml:"group"`
	// Interval is how often the janitor looks for expired messages (default 1m).
	Interval time.Duration `yaml:"interval"`
	// Batch is the most messages one storage call removes (default 1000); the janitor
	// pauses between batches.
	Batch int `yaml:"batch"`
}

// Resolved returns r with defaults in place of zero values.
func (r Retention) Resolved() Retention {
	if r.Interval == 0 {
		r.Interval = time.Minute
	}
	if r.Batch == 0 {
		r.Batch = 1000
	}
	return r
}

// Enabled reports whether any kind of conversation has a retention period.
func (r Retention) Enabled() bool { return r.Private > 0 || r.Group > 0 }

// Validate checks the section (with its defaults applied).
func (r Retention) Validate() error {
	r = r.Resolved()
	var errs []error
	if r.Private < 0 || r.Group < 0 {
		errs = append(errs, errors.New("storage.retention: private and group must be >= 0 (0: keep forever)"))
	}
	if r.Private > 0 && r.Private < time.Second || r.Group > 0 && r.Group < time.Second {
		errs = append(errs, errors.New("storage.retention: a period under 1s is a mistake (use at least 1s, or 0 to keep forever)"))
	}
	if r.Interval < 100*time.Millisecond {
		errs = append(errs, errors.New("storage.retention.interval: must be >= 100ms"))
	}
	if r.Batch < 1 || r.Batch > 100000 {
		errs = append(errs, errors.New("storage.retention.batch: must be 1 to 100000"))
	}
	return errors.Join(errs...)
}
