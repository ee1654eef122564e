package v1alpha1

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Path is a field path such as spec.ports[1].protocol.
type Path struct {
	parent *Path
	name   string // field name, or "" for an index step
	index  int
}

// NewPath starts a path at a top-level field.
func NewPath(name string) *Path { return &Path{name: name} }

// Child returns the path to a field below p.
func (p *Path) Child(name string) *Path { return &Path{parent: p, name: name} }

// Index returns the path to element i of the list at p.
func (p *Path) Index(i int) *Path { return &Path{parent: p, index: i} }

// Key returns the path to a map entry below p. A long key is cut short, so
// that a hostile input cannot make error messages huge.
func (p *Path) Key(k string) *Path { return &Path{parent: p, name: "[" + quote(k) + "]"} }

// String renders the path.
func (p *Path) String() string {
	if p == nil {
		return ""
	}
	var steps []*Path
	for q := p; q != nil; q = q.parent {
		steps = append(steps, q)
	}
	var b strings.Builder
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i]
		switch {
		case s.name == "":
			fmt.Fprintf(&b, "[%d]", s.index)
		case strings.HasPrefix(s.name, "["):
			b.WriteString(s.name)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.name)
		}
	}
	return b.String()
}

// FieldError is one problem with one field.
type FieldError struct {
	// Field is the path, such as spec.ports[0].port, or empty for a problem
	// with the document as a whole.
	Field string `json:"field,omitempty"`
	// Line is the 1-based line in the source document, or 0 when unknown.
	Line   int    `json:"line,omitempty"`
	Detail string `json:"detail"`
}

func (e *FieldError) Error() string {
	msg := e.Detail
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Line > 0 {
		msg += fmt.Sprintf(" (line %d)", e.Line)
	}
	return msg
}

// Invalid reports a bad value at path.
func Invalid(path *Path, format string, args ...any) *FieldError {
	return &FieldError{Field: path.String(), Detail: fmt.Sprintf(format, args...)}
}

// Required reports a field that must be set and is not.
func Required(path *Path) *FieldError {
	return &FieldError{Field: path.String(), Detail: "is required"}
}

// NotSupported reports a value outside a fixed set, listing the set.
func NotSupported[T ~string](path *Path, value T, allowed []T) *FieldError {
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return Invalid(path, "unsupported value %s: must be one of %s", quote(string(value)), strings.Join(names, ", "))
}

// quote quotes s for an error message, eliding the middle of long values so
// that a hostile input cannot make the message huge.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}

// ErrorList collects every problem found, so the user sees them all at once.
type ErrorList []*FieldError

// Err returns the list as an error, or nil when it is empty.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}
