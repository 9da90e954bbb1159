package codec

import (
	"errors"
	"fmt"
)

// Recognizer tells a plugin's protocol from a connection's first bytes. The plugin
// declares it at the handshake and the host evaluates it locally, synchronously, for
// every new connection that no built-in protocol claimed, so it is deliberately small:
// a connection is the plugin's when any Rule matches.
//
// Limits (checked by Compile): at most MaxRules rules of at most MaxSteps steps; a rule
// looks at no more than MaxWindow bytes; each rule compares at least MinCompared bytes
// under a non-zero mask (so that no plugin can claim every unknown connection). Rules
// cannot express alternatives inside a rule, repetition, or anything past MaxWindow;
// a protocol that needs more must use a port of its own.
type Recognizer struct {
	Rules []Rule `json:"rules"`
}

// Rule is a sequence of steps applied from the first byte on; it matches when every
// step does.
type Rule struct {
	// Name describes the rule in errors and logs.
	Name  string `json:"name,omitempty"`
	Steps []Step `json:"steps"`
}

// Step is one step of a rule. Exactly one of Bytes, Skip and Varint is set.
type Step struct {
	// Bytes must come next: byte i of the input, ANDed with Mask[i], must equal
	// Bytes[i] ANDed with Mask[i].
	Bytes []byte `json:"bytes,omitempty"`
	// Mask has the length of Bytes; nil compares every bit.
	Mask []byte `json:"mask,omitempty"`
	// Skip passes over this many bytes, whatever they are.
	Skip int `json:"skip,omitempty"`
	// Varint passes over a variable-length integer of at most this many bytes, 7 bits
	// per byte with the high bit set on every byte but the last (MQTT's remaining
	// length, protobuf's varint). Longer is no match.
	Varint int `json:"varint,omitempty"`
}

// Recognizer limits.
const (
	MaxRules    = 16
	MaxSteps    = 16
	MaxWindow   = 256
	MinCompared = 2
)

// Exact is a step matching these bytes.
func Exact(b ...byte) Step { return Step{Bytes: b} }

// Text is a step matching the bytes of s.
func Text(s string) Step { return Step{Bytes: []byte(s)} }

// Masked is a step matching b under mask (only the bits set in mask are compared).
func Masked(b, mask []byte) Step { return Step{Bytes: b, Mask: mask} }

// Skip is a step passing over n bytes.
func Skip(n int) Step { return Step{Skip: n} }

// Varint is a step passing over a variable-length integer of at most maxBytes bytes.
func Varint(maxBytes int) Step { return Step{Varint: maxBytes} }

// Matcher is a compiled Recognizer. Safe for concurrent use.
type Matcher struct {
	rules []Rule
}

// Compile checks r against the limits and returns its matcher.
func (r Recognizer) Compile() (*Matcher, error) {
	if len(r.Rules) == 0 {
		return nil, errors.New("recognizer: no rules")
	}
	if len(r.Rules) > MaxRules {
		return nil, fmt.Errorf("recognizer: %d rules, at most %d", len(r.Rules), MaxRules)
	}
	m := &Matcher{rules: make([]Rule, len(r.Rules))}
	for i, rule := range r.Rules {
		if err := rule.check(); err != nil {
			return nil, fmt.Errorf("recognizer rule %d (%s): %w", i, rule.Name, err)
		}
		m.rules[i] = rule.clone()
	}
	return m, nil
}

func (r Rule) check() error {
	if len(r.Steps) == 0 || len(r.Steps) > MaxSteps {
		return fmt.Errorf("%d steps, want 1 to %d", len(r.Steps), MaxSteps)
	}
	window, compared := 0, 0
	for j, s := range r.Steps {
		set := 0
		if len(s.Bytes) > 0 {
			set++
		}
		if s.Skip != 0 {
			set++
		}
		if s.Varint != 0 {
			set++
		}
		if set != 1 {
			return fmt.Errorf("step %d: exactly one of bytes, skip, varint must be set", j)
		}
		switch {
		case s.Mask != nil && len(s.Mask) != len(s.Bytes):
			return fmt.Errorf("step %d: mask has %d bytes, bytes %d", j, len(s.Mask), len(s.Bytes))
		case s.Skip < 0:
			return fmt.Errorf("step %d: negative skip", j)
		case s.Varint < 0 || s.Varint > 10:
			return fmt.Errorf("step %d: varint of %d bytes, want 1 to 10", j, s.Varint)
		}
		window += len(s.Bytes) + s.Skip + s.Varint
		for k := range s.Bytes {
			if s.Mask == nil || s.Mask[k] != 0 {
				compared++
			}
		}
	}
	if window > MaxWindow {
		return fmt.Errorf("looks at up to %d bytes, at most %d", window, MaxWindow)
	}
	if compared < MinCompared {
		return fmt.Errorf("compares %d bytes, at least %d", compared, MinCompared)
	}
	return nil
}

func (r Rule) clone() Rule {
	c := Rule{Name: r.Name, Steps: make([]Step, len(r.Steps))}
	for i, s := range r.Steps {
		c.Steps[i] = Step{Bytes: append([]byte(nil), s.Bytes...), Skip: s.Skip, Varint: s.Varint}
		if s.Mask != nil {
			c.Steps[i].Mask = append([]byte(nil), s.Mask...)
		}
	}
	return c
}

// Match is a recogniser's verdict on a connection's first bytes.
type Match int

// Verdicts of Matcher.Match.
const (
	NoMatch  Match = iota // not this protocol
	NeedMore              // cannot tell yet: wait for more bytes
	Matched               // this protocol
)

// Match classifies the first bytes of a connection: Matched when a rule matches
// (rules are tried in order), NeedMore when no rule failed for good but one needs more
// bytes, NoMatch otherwise.
func (m *Matcher) Match(b []byte) Match {
	more := false
	for i := range m.rules {
		switch matchRule(&m.rules[i], b) {
		case Matched:
			return Matched
		case NeedMore:
			more = true
		}
	}
	if more {
		return NeedMore
	}
	return NoMatch
}

func matchRule(r *Rule, b []byte) Match {
	pos := 0
	for _, s := range r.Steps {
		switch {
		case len(s.Bytes) > 0:
			for k, want := range s.Bytes {
				if pos+k >= len(b) {
					return NeedMore
				}
				mask := byte(0xFF)
				if s.Mask != nil {
					mask = s.Mask[k]
				}
				if b[pos+k]&mask != want&mask {
					return NoMatch
				}
			}
			pos += len(s.Bytes)
		case s.Skip > 0:
			pos += s.Skip
			if pos > len(b) {
				return NeedMore
			}
		default: // varint
			n := 0
			for {
				if n == s.Varint {
					return NoMatch
				}
				if pos >= len(b) {
					return NeedMore
				}
				c := b[pos]
				pos++
				n++
				if c&0x80 == 0 {
					break
				}
			}
		}
	}
	return Matched
}
