package lua

import (
	"strings"
	"testing"
)

func TestMatcher(t *testing.T) {
	words := []string{"badword", "bad", "ass", "Spam Link", "坏话", "Привет", "he", "she", "hers"}
	tests := []struct {
		name      string
		whole     bool
		text      string
		wantFind  string
		wantMask  string
		wantCount int
	}{
		{"none", false, "a perfectly normal message", "", "a perfectly normal message", 0},
		{"simple", false, "what a badword", "bad", "what a *******", 2},
		{"case", false, "BadWord!", "Bad", "*******!", 2},
		{"substring", false, "classic", "ass", "cl***ic", 1},
		{"whole word skips substring", true, "classic badwords", "", "classic badwords", 0},
		{"whole word", true, "a badword, ok", "badword", "a *******, ok", 1},
		{"phrase", true, "click this spam link now", "Spam Link", "click this ********* now", 1},
		{"cjk", false, "你说坏话了", "坏话", "你说**了", 1},
		{"cjk whole word", true, "你说坏话了", "坏话", "你说**了", 1},
		{"cyrillic case", false, "ПРИВЕТ мир", "Привет", "****** мир", 1},
		{"overlaps", false, "ushers", "she", "u*****", 3},
		{"empty", false, "", "", "", 0},
		{"invalid utf8", false, "bad\xffbad", "bad", "***\xff***", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMatcher(words, tt.whole)
			mt, ok := m.Find(tt.text)
			if (tt.wantFind != "") != ok || ok && !strings.EqualFold(mt.Word, tt.wantFind) {
				t.Errorf("Find = %+v %v, want %q", mt, ok, tt.wantFind)
			}
			if ok && !strings.EqualFold(tt.text[mt.Start:mt.End], mt.Word) {
				t.Errorf("Find offsets %d:%d give %q", mt.Start, mt.End, tt.text[mt.Start:mt.End])
			}
			got, n := m.Mask(tt.text, "*")
			if got != tt.wantMask || n != tt.wantCount {
				t.Errorf("Mask = %q %d, want %q %d", got, n, tt.wantMask, tt.wantCount)
			}
		})
	}
}

func TestMatcherManyClasses(t *testing.T) {
	// Every byte value in some word: 256 classes plus the "no word" class.
	var words []string
	for b := 1; b < 256; b++ {
		words = append(words, "x"+string([]byte{byte(b)}))
	}
	m := NewMatcher(words, false)
	if _, n := m.Mask("ax\x01b", "#"); n != 1 {
		t.Errorf("matches %d", n)
	}
}

func TestMatcherAgreesWithNaive(t *testing.T) {
	words := []string{"abc", "bcd", "cde", "a", "zz", "abcdef"}
	m := NewMatcher(words, false)
	texts := []string{"abcdefg", "zzz", "xabcdx", "aaaa", "ABCDEF zz"}
	for _, text := range texts {
		naive := 0
		low := strings.ToLower(text)
		for _, w := range words {
			for i := 0; i+len(w) <= len(low); i++ {
				if low[i:i+len(w)] == w {
					naive++
				}
			}
		}
		if got := len(m.FindAll(text)); got != naive {
			t.Errorf("%q: %d matches, naive %d", text, got, naive)
		}
	}
}
