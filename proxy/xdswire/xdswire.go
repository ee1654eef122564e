// Package xdswire decodes, checks and compares the xDS messages the proxy
// honours, without protobuf reflection.
//
// The proxy's configuration arrives as Envoy's API types (go-control-plane's
// Go structs). Decoding them with proto.Unmarshal, or walking them with
// protoreflect, makes protobuf-go build each type's coders and, for its
// required-field check, the full descriptors of every message type the
// decoded one can hold: for a Listener or a Cluster that is most of
// Envoy's API, about two megabytes of a proxy's four-megabyte live heap,
// marked by every collection. This package's code is generated from the
// allowlist (which fields of which messages the proxy honours, in
// spec_*_test.go) and touches only those fields:
//
//   - Unmarshal decodes a message from the wire, refusing any field the
//     proxy does not honour (a field unknown to it, or known and not
//     honoured) with the field's path.
//   - Check walks a message built in memory the same way, unpacking the
//     Any values it holds (typed_config) into their types, then enforces
//     Envoy's own field rules (protoc-gen-validate's, read from the same
//     descriptors by the generator) on the fields the proxy honours.
//   - Equal compares two messages.
//
// Messages that the proxy carries without interpreting them field by field
// (metadata, durations, wrappers: the "leaves") are decoded whole. The
// decoders, checkers and comparisons (zz_decode.go, zz_check.go,
// zz_equal.go) are written by `go test ./proxy/xdswire -run TestGenerated
// -update`; TestGenerated fails when they are out of date.
package xdswire

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// maxDepth bounds the nesting of messages, as protobuf-go's decoder does.
const maxDepth = 10000

// FieldError is a message the proxy cannot take, at a field path within it
// ("filter_chains[0].filters[1].typed_config(envoy...HttpConnectionManager).tracing").
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// Unmarshal decodes b into m, which must be one of the messages the proxy
// honours. It fails on the first field the proxy does not honour.
func Unmarshal(b []byte, m proto.Message) error { return unmarshal(b, m, maxDepth) }

// UnmarshalAny decodes a into m, which must be of a's type.
func UnmarshalAny(a *anypb.Any, m proto.Message) error {
	if !a.MessageIs(m) {
		return fmt.Errorf("%s is not a %s", TypeName(a), m.ProtoReflect().Descriptor().FullName())
	}
	return Unmarshal(a.GetValue(), m)
}

// UnmarshalNew decodes a into a new message of its type, which must be one
// the proxy honours.
func UnmarshalNew(a *anypb.Any) (proto.Message, error) {
	m := newMessage(string(a.MessageName()))
	if m == nil {
		return nil, fmt.Errorf("%s is not supported by this proxy", TypeName(a))
	}
	if err := Unmarshal(a.GetValue(), m); err != nil {
		return nil, err
	}
	return m, nil
}

// Check walks every populated field of m and of the Any values it holds,
// and fails at the first field or type the proxy does not honour, then at
// the first value that breaks Envoy's rules for its field.
func Check(m proto.Message) error {
	if !m.ProtoReflect().IsValid() {
		return nil
	}
	// Fields the proxy does not honour are refused first, anywhere in the
	// message, then the rules are checked.
	if err := check(m, false); err != nil {
		return err
	}
	return check(m, true)
}

// Equal reports whether a and b, two messages of one type the proxy
// honours, hold the same values. Fields the proxy does not honour are not
// compared; Check refuses messages that have them.
func Equal(a, b proto.Message) bool { return equal(a, b, "") }

// EqualExcept is Equal ignoring the top-level field named skip.
func EqualExcept(a, b proto.Message, skip string) bool { return equal(a, b, skip) }

// checkAny checks the message an Any holds, in the pass of check. ext is
// the name of the extension it configures (a filter's or transport
// socket's name), for the error when its type is not one the proxy honours.
func checkAny(a *anypb.Any, ext, field string, rules bool) error {
	if a == nil {
		return nil
	}
	m := newMessage(string(a.MessageName()))
	if m == nil {
		if ext != "" {
			// Envoy's extension points name their extension beside
			// its config: say which extension is not supported.
			return &FieldError{Err: fmt.Errorf("%s is not supported", ext)}
		}
		return &FieldError{Path: field, Err: fmt.Errorf("%s is not supported", TypeName(a))}
	}
	path := field + "(" + string(a.MessageName()) + ")"
	if err := unmarshal(a.GetValue(), m, maxDepth); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return at(err, path)
		}
		return &FieldError{Path: field, Err: fmt.Errorf("decode %s: %w", a.MessageName(), err)}
	}
	if err := check(m, rules); err != nil {
		return at(err, path)
	}
	return nil
}

// TypeName names the type an Any holds, or quotes its type URL when that
// names no message.
func TypeName(a *anypb.Any) string {
	if n := a.MessageName(); n != "" {
		return string(n)
	}
	return strconv.Quote(a.GetTypeUrl())
}

// at puts a field (with any index) before the path of err.
func at(err error, field string) error {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return &FieldError{Path: field, Err: err}
	}
	switch {
	case fe.Path == "":
		return &FieldError{Path: field, Err: fe.Err}
	case field == "":
		return fe
	case strings.HasPrefix(fe.Path, "["):
		return &FieldError{Path: field + fe.Path, Err: fe.Err}
	}
	return &FieldError{Path: field + "." + fe.Path, Err: fe.Err}
}

func index(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

func key(field string, k any) string {
	if s, ok := k.(string); ok {
		return field + "[" + strconv.Quote(s) + "]"
	}
	return fmt.Sprintf("%s[%v]", field, k)
}

var (
	errNotSupported = errors.New("field is not supported by this proxy")
	errUnknown      = errors.New("holds fields unknown to this proxy")
	errDepth        = errors.New("messages nested too deeply")
	errUTF8         = errors.New("invalid UTF-8 in a string")
)

func notSupported(field string) error { return &FieldError{Path: field, Err: errNotSupported} }

func typeNotSupported(field, name string) error {
	return &FieldError{Path: field, Err: fmt.Errorf("%s is not supported", name)}
}

func unknownField(num protowire.Number) error {
	return &FieldError{Err: fmt.Errorf("%w (field number %d)", errUnknown, num)}
}

func wireErr(n int) error { return fmt.Errorf("malformed: %w", protowire.ParseError(n)) }

func wrongType(typ protowire.Type) error {
	return fmt.Errorf("malformed: wire type %d does not fit the field", typ)
}

// tag reads a field's tag.
func tag(b []byte) (protowire.Number, protowire.Type, []byte, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, nil, wireErr(n)
	}
	return num, typ, b[n:], nil
}

// skip passes over the value of a field the message does not interpret.
func skip(b []byte, num protowire.Number, typ protowire.Type) ([]byte, error) {
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return nil, wireErr(n)
	}
	return b[n:], nil
}

func varint(b []byte, typ protowire.Type) (uint64, []byte, error) {
	if typ != protowire.VarintType {
		return 0, nil, wrongType(typ)
	}
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, nil, wireErr(n)
	}
	return v, b[n:], nil
}

func fixed32(b []byte, typ protowire.Type) (uint32, []byte, error) {
	if typ != protowire.Fixed32Type {
		return 0, nil, wrongType(typ)
	}
	v, n := protowire.ConsumeFixed32(b)
	if n < 0 {
		return 0, nil, wireErr(n)
	}
	return v, b[n:], nil
}

func fixed64(b []byte, typ protowire.Type) (uint64, []byte, error) {
	if typ != protowire.Fixed64Type {
		return 0, nil, wrongType(typ)
	}
	v, n := protowire.ConsumeFixed64(b)
	if n < 0 {
		return 0, nil, wireErr(n)
	}
	return v, b[n:], nil
}

// delimited reads a length-delimited value (a message, string, bytes or
// packed list), aliasing b.
func delimited(b []byte, typ protowire.Type) ([]byte, []byte, error) {
	if typ != protowire.BytesType {
		return nil, nil, wrongType(typ)
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, nil, wireErr(n)
	}
	return v, b[n:], nil
}

func str(b []byte, typ protowire.Type) (string, []byte, error) {
	v, rest, err := delimited(b, typ)
	if err != nil {
		return "", nil, err
	}
	if !utf8.Valid(v) {
		return "", nil, errUTF8
	}
	return string(v), rest, nil
}

func bytesValue(b []byte, typ protowire.Type) ([]byte, []byte, error) {
	v, rest, err := delimited(b, typ)
	if err != nil {
		return nil, nil, err
	}
	return append([]byte{}, v...), rest, nil
}

// packed calls read for each value of a repeated scalar field, packed (one
// length-delimited run) or not (one value per tag).
func packed[T any](b []byte, typ, want protowire.Type, read func([]byte, protowire.Type) (T, []byte, error), add func(T)) ([]byte, error) {
	if typ != protowire.BytesType {
		v, rest, err := read(b, typ)
		if err == nil {
			add(v)
		}
		return rest, err
	}
	run, rest, err := delimited(b, typ)
	if err != nil {
		return nil, err
	}
	for len(run) > 0 {
		var v T
		if v, run, err = read(run, want); err != nil {
			return nil, err
		}
		add(v)
	}
	return rest, nil
}

// The conversions of wire values to field values.

func u32(v uint64) uint32   { return uint32(v) }
func i32(v uint64) int32    { return int32(v) }
func i64(v uint64) int64    { return int64(v) }
func s32(v uint64) int32    { return int32(protowire.DecodeZigZag(v & math.MaxUint32)) }
func s64(v uint64) int64    { return protowire.DecodeZigZag(v) }
func boolean(v uint64) bool { return v != 0 }
func f32(v uint32) float32  { return math.Float32frombits(v) }
func f64(v uint64) float64  { return math.Float64frombits(v) }
func sf32(v uint32) int32   { return int32(v) }
func sf64(v uint64) int64   { return int64(v) }

func equalBytes(a, b []byte) bool { return string(a) == string(b) }

func equalSlice[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalMessages[T any](a, b []*T, eq func(a, b *T) bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !eq(a[i], b[i]) {
			return false
		}
	}
	return true
}

func equalMap[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func equalMessageMap[K comparable, T any](a, b map[K]*T, eq func(a, b *T) bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !eq(v, w) {
			return false
		}
	}
	return true
}

func equalBytesSlice(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equalBytes(a[i], b[i]) {
			return false
		}
	}
	return true
}

func equalBytesMap[K comparable](a, b map[K][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !equalBytes(v, w) {
			return false
		}
	}
	return true
}

// Envoy's field rules (protoc-gen-validate), as the checkers enforce them.

func ruleErr(path, msg string) error { return &FieldError{Path: path, Err: errors.New(msg)} }

func runes(s string) int { return utf8.RuneCountInString(s) }

// duration returns a Duration's value, false when it is not valid.
func duration(d *durationpb.Duration) (time.Duration, bool) {
	if d.CheckValid() != nil {
		return 0, false
	}
	return d.AsDuration(), true
}

// headerName reports whether s is an HTTP header name: strictly, a token
// with an optional leading ':' (protoc-gen-validate's pattern, whose class
// "+-." also takes ','); loosely, no NUL, CR or LF.
func headerName(s string, strict bool) bool {
	if !strict {
		return headerValue(s, false)
	}
	s = strings.TrimPrefix(s, ":")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case strings.IndexByte("!#$%&'*+,-.^_|~`", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// headerValue reports whether s is an HTTP header value: strictly, no
// control character but tab; loosely, no NUL, CR or LF.
func headerValue(s string, strict bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if strict && (c < 0x20 && c != '\t' || c == 0x7f) || !strict && (c == 0 || c == '\r' || c == '\n') {
			return false
		}
	}
	return true
}
