package lua

import (
	"unicode"
	"unicode/utf8"
)

// Matcher finds the words of a list in texts, ignoring case. It is an Aho-Corasick
// automaton compiled once into a dense transition table over byte classes, so a scan
// costs one table lookup per byte whatever the number of words. A Matcher is
// immutable and safe for concurrent use.
//
// Case folding is Unicode simple lower-casing of each rune whose lower case has the
// same UTF-8 length (all of ASCII, Latin, Greek, Cyrillic...), so match offsets are
// offsets in the original text.
type Matcher struct {
	words      []string // as given, by id
	lens       []int    // folded byte length, by id
	class      [256]uint16
	nclass     int
	next       []int32     // state*nclass + class -> state (construction)
	dfa        []int32     // state*nclass + class -> next state*nclass, complemented (^) when it ends a word
	asciiClass [128]uint16 // class of the lower case of each ASCII byte
	out        []int32     // state -> word id ending here, or -1
	dict       []int32     // state -> nearest suffix state with an output, or -1
	wholeWord  bool
}

// Match is one occurrence of a word: text[Start:End] is it, Word the list entry.
type Match struct {
	Start, End int
	Word       string
}

// NewMatcher compiles words. Empty words are ignored; with wholeWord a match counts
// only when not preceded or followed by an ASCII letter, digit or underscore (so
// "class" does not match "ass"; non-ASCII neighbours are boundaries, which keeps CJK
// words matching inside sentences).
func NewMatcher(words []string, wholeWord bool) *Matcher {
	m := &Matcher{wholeWord: wholeWord}
	folded := make([][]byte, 0, len(words))
	for _, w := range words {
		f := foldString(w)
		if len(f) == 0 {
			continue
		}
		m.words = append(m.words, w)
		m.lens = append(m.lens, len(f))
		folded = append(folded, f)
		for _, b := range f {
			if m.class[b] == 0 {
				m.nclass++
				m.class[b] = uint16(m.nclass) // at most 256 classes + class 0
			}
		}
	}
	m.nclass++ // class 0: bytes in no word
	m.build(folded)
	return m
}

// build makes the trie, then the failure links, then the dense DFA.
func (m *Matcher) build(folded [][]byte) {
	nc := m.nclass
	m.next = make([]int32, nc) // root
	m.out = []int32{-1}
	for id, f := range folded {
		s := int32(0)
		for _, b := range f {
			c := int32(m.class[b])
			if m.next[s*int32(nc)+c] == 0 {
				m.next = append(m.next, make([]int32, nc)...)
				m.out = append(m.out, -1)
				m.next[s*int32(nc)+c] = int32(len(m.out) - 1)
			}
			s = m.next[s*int32(nc)+c]
		}
		if m.out[s] < 0 || m.lens[id] > m.lens[m.out[s]] {
			m.out[s] = int32(id) // duplicate words: keep one
		}
	}
	n := len(m.out)
	fail := make([]int32, n)
	m.dict = make([]int32, n)
	m.dict[0] = -1
	queue := make([]int32, 0, n)
	for c := 0; c < nc; c++ {
		if t := m.next[c]; t != 0 {
			fail[t] = 0
			m.dict[t] = -1
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for c := int32(0); c < int32(nc); c++ {
			t := m.next[s*int32(nc)+c]
			if t == 0 {
				m.next[s*int32(nc)+c] = m.next[fail[s]*int32(nc)+c]
				continue
			}
			f := m.next[fail[s]*int32(nc)+c]
			fail[t] = f
			if m.out[f] >= 0 {
				m.dict[t] = f
			} else {
				m.dict[t] = m.dict[f]
			}
			queue = append(queue, t)
		}
	}
	m.dfa = make([]int32, len(m.next))
	for i, t := range m.next {
		e := t * int32(nc)
		if m.out[t] >= 0 || m.dict[t] >= 0 {
			e = ^e
		}
		m.dfa[i] = e
	}
	for b := range m.asciiClass {
		m.asciiClass[b] = m.class[asciiLower[b]]
	}
}

// Len returns the number of words.
func (m *Matcher) Len() int { return len(m.words) }

// scan feeds text through the automaton and calls fn for every match, in order of
// end offset, until fn returns false.
func (m *Matcher) scan(text string, fn func(Match) bool) {
	if len(m.words) == 0 {
		return
	}
	dfa, cls := m.dfa, &m.asciiClass
	s := int32(0)
	var buf [utf8.UTFMax]byte
	for i := 0; i < len(text); {
		b := text[i]
		if b < utf8.RuneSelf {
			e := dfa[s+int32(cls[b])]
			i++
			if e >= 0 {
				s = e
				continue
			}
			s = ^e
			if !m.emit(text, s/int32(m.nclass), i, fn) {
				return
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		enc := foldRune(r, size, buf[:0], text[i:i+size])
		i += size
		var e int32
		for _, c := range enc {
			e = dfa[s+int32(m.class[c])]
			if e < 0 {
				s = ^e
			} else {
				s = e
			}
		}
		if e < 0 && !m.emit(text, s/int32(m.nclass), i, fn) {
			return
		}
	}
}

// emit reports the words ending at end in state s.
func (m *Matcher) emit(text string, s int32, end int, fn func(Match) bool) bool {
	for t := s; t >= 0; t = m.dict[t] {
		id := m.out[t]
		if id < 0 {
			continue
		}
		start := end - m.lens[id]
		if m.wholeWord && (start > 0 && isWordByte(text[start-1]) || end < len(text) && isWordByte(text[end])) {
			continue
		}
		if !fn(Match{Start: start, End: end, Word: m.words[id]}) {
			return false
		}
	}
	return true
}

// Find returns the first match (the one ending first) and whether there is one.
func (m *Matcher) Find(text string) (Match, bool) {
	var found Match
	ok := false
	m.scan(text, func(mt Match) bool { found, ok = mt, true; return false })
	return found, ok
}

// FindAll returns every match, overlapping ones included.
func (m *Matcher) FindAll(text string) []Match {
	var all []Match
	m.scan(text, func(mt Match) bool { all = append(all, mt); return true })
	return all
}

// Mask replaces every rune of every match with mask and returns the new text and the
// number of matches. Text without matches is returned as it is, without copying.
func (m *Matcher) Mask(text, mask string) (string, int) {
	var covered []bool
	n := 0
	m.scan(text, func(mt Match) bool {
		if covered == nil {
			covered = make([]bool, len(text))
		}
		for i := mt.Start; i < mt.End; i++ {
			covered[i] = true
		}
		n++
		return true
	})
	if n == 0 {
		return text, 0
	}
	out := make([]byte, 0, len(text)+len(mask)*4)
	for i := 0; i < len(text); {
		_, size := utf8.DecodeRuneInString(text[i:])
		if covered[i] {
			out = append(out, mask...)
		} else {
			out = append(out, text[i:i+size]...)
		}
		i += size
	}
	return string(out), n
}

var asciiLower = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if 'A' <= i && i <= 'Z' {
			t[i] = byte(i + 'a' - 'A')
		}
	}
	return t
}()

func isWordByte(b byte) bool {
	return b == '_' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
}

// foldRune appends the folded encoding of r (size bytes long, orig in the text) to dst:
// its lower case when that has the same length, else orig.
func foldRune(r rune, size int, dst []byte, orig string) []byte {
	if r != utf8.RuneError {
		if l := unicode.ToLower(r); l != r && utf8.RuneLen(l) == size {
			return utf8.AppendRune(dst, l)
		}
	}
	return append(dst, orig...)
}

// foldString folds s the way scan folds texts.
func foldString(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			out = append(out, asciiLower[b])
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		out = foldRune(r, size, out, s[i:i+size])
		i += size
	}
	return out
}
