package codec

import (
	"testing"
)

// mqttRecognizer is MQTT's CONNECT: 0x10, remaining length, 0x00 0x04 "MQTT".
var mqttRecognizer = Recognizer{Rules: []Rule{{Name: "mqtt connect", Steps: []Step{
	Exact(0x10), Varint(4), Exact(0x00, 0x04), Text("MQTT"),
}}}}

func TestMatcher(t *testing.T) {
	mqtt, err := mqttRecognizer.Compile()
	if err != nil {
		t.Fatal(err)
	}
	line, err := Recognizer{Rules: []Rule{
		{Steps: []Step{Text("LOGIN ")}},
		{Steps: []Step{Masked([]byte("ab"), []byte{0xDF, 0xDF})}}, // case-insensitive "AB"
		{Steps: []Step{Skip(2), Exact('x', 'y')}},
	}}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		m    *Matcher
		in   string
		want Match
	}{
		{"mqtt empty", mqtt, "", NeedMore},
		{"mqtt first byte", mqtt, "\x10", NeedMore},
		{"mqtt wrong type", mqtt, "\x20\x02", NoMatch},
		{"mqtt one-byte length", mqtt, "\x10\x12\x00\x04MQTT\x04", Matched},
		{"mqtt two-byte length", mqtt, "\x10\x92\x01\x00\x04MQTT", Matched},
		{"mqtt four-byte length", mqtt, "\x10\xff\xff\xff\x7f\x00\x04MQTT", Matched},
		{"mqtt five-byte length", mqtt, "\x10\xff\xff\xff\xff\x7f\x00\x04MQTT", NoMatch},
		{"mqtt length incomplete", mqtt, "\x10\x92", NeedMore},
		{"mqtt partial name", mqtt, "\x10\x12\x00\x04MQ", NeedMore},
		{"mqtt 3.1 name", mqtt, "\x10\x12\x00\x06MQIsdp", NoMatch},
		{"mqtt wrong name", mqtt, "\x10\x12\x00\x04MQTX", NoMatch},
		{"line login", line, "LOGIN alice\n", Matched},
		{"line partial", line, "LOG", NeedMore},
		{"line masked lower", line, "ab", Matched},
		{"line masked upper", line, "AB", Matched},
		{"line skip", line, "..xy", Matched},
		{"line skip short", line, ".", NeedMore},
		{"line none", line, "QQQQ", NoMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Match([]byte(tt.in)); got != tt.want {
				t.Errorf("Match(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestCompileLimits(t *testing.T) {
	many := make([]Rule, MaxRules+1)
	for i := range many {
		many[i] = Rule{Steps: []Step{Text("ab")}}
	}
	long := make([]Step, MaxSteps+1)
	for i := range long {
		long[i] = Text("ab")
	}
	tests := []struct {
		name string
		r    Recognizer
		ok   bool
	}{
		{"ok", mqttRecognizer, true},
		{"no rules", Recognizer{}, false},
		{"too many rules", Recognizer{Rules: many}, false},
		{"too many steps", Recognizer{Rules: []Rule{{Steps: long}}}, false},
		{"empty rule", Recognizer{Rules: []Rule{{}}}, false},
		{"one byte compared", Recognizer{Rules: []Rule{{Steps: []Step{Exact(1), Skip(3)}}}}, false},
		{"mask zero", Recognizer{Rules: []Rule{{Steps: []Step{Masked([]byte{1, 2}, []byte{0, 0})}}}}, false},
		{"mask length", Recognizer{Rules: []Rule{{Steps: []Step{Masked([]byte{1, 2}, []byte{0xff})}}}}, false},
		{"two fields", Recognizer{Rules: []Rule{{Steps: []Step{{Bytes: []byte("ab"), Skip: 1}}}}}, false},
		{"window", Recognizer{Rules: []Rule{{Steps: []Step{Skip(MaxWindow), Text("ab")}}}}, false},
		{"negative skip", Recognizer{Rules: []Rule{{Steps: []Step{Text("ab"), Skip(-1)}}}}, false},
		{"varint too long", Recognizer{Rules: []Rule{{Steps: []Step{Text("ab"), Varint(11)}}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.r.Compile()
			if (err == nil) != tt.ok {
				t.Errorf("Compile: err = %v, want ok = %v", err, tt.ok)
			}
		})
	}
}

func FuzzMatcher(f *testing.F) {
	m, err := mqttRecognizer.Compile()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("\x10\x12\x00\x04MQTT\x04"))
	f.Add([]byte("\x10\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := m.Match(b)
		// A verdict never changes from Matched or NoMatch when more bytes arrive.
		if got != NeedMore {
			if again := m.Match(append(append([]byte(nil), b...), 0x00, 0x7f)); again != got {
				t.Fatalf("Match(%q) = %d but %d with more bytes", b, got, again)
			}
		}
	})
}
