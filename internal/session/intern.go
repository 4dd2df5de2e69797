package session

import "sync"

// Attribute names and values (groups, roles) and user directories repeat
// across thousands of sessions, each decoded from JSON into a string of
// its own. Interning keeps one copy. The table is bounded, so values that
// do not repeat (an e-mail address per user) cannot grow it without end:
// once full, new strings are simply kept as they are.
const (
	internMaxLen     = 64
	internMaxEntries = 1 << 16
)

var interned = struct {
	sync.RWMutex
	m map[string]string
}{m: make(map[string]string)}

func intern(s string) string {
	if s == "" || len(s) > internMaxLen {
		return s
	}
	interned.RLock()
	v, ok := interned.m[s]
	interned.RUnlock()
	if ok {
		return v
	}
	interned.Lock()
	defer interned.Unlock()
	if v, ok := interned.m[s]; ok {
		return v
	}
	if len(interned.m) >= internMaxEntries {
		return s
	}
	interned.m[s] = s
	return s
}

// internAttributes copies attrs (the caller may reuse its slice) with
// interned names and values.
func internAttributes(attrs []Attribute) []Attribute {
	if len(attrs) == 0 {
		return nil
	}
	out := make([]Attribute, len(attrs))
	for i, a := range attrs {
		out[i] = Attribute{Key: intern(a.Key), Value: intern(a.Value)}
	}
	return out
}
