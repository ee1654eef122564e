package xdswire

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Envoy's constraints on its fields are protoc-gen-validate rules, options
// of the fields in the .proto files. The proxy does not link the
// generated ValidateAll methods (their code is a quarter of the proxy's):
// the checkers enforce the rules of the fields the proxy honours, written
// from the same options here. A rule this generator does not know fails
// the generation, so none is dropped unnoticed.

// fieldRules returns the rules of a field, nil when it has none.
func fieldRules(fd protoreflect.FieldDescriptor) *validate.FieldRules {
	r, _ := proto.GetExtension(fd.Options(), validate.E_Rules).(*validate.FieldRules)
	if r == nil || proto.Size(r) == 0 {
		return nil
	}
	return r
}

// oneofRequired reports whether one of a oneof's fields must be set.
func oneofRequired(od protoreflect.OneofDescriptor) bool {
	v, _ := proto.GetExtension(od.Options(), validate.E_Required).(bool)
	return v
}

// rulesDisabled reports whether a message opts out of its fields' rules.
func rulesDisabled(md protoreflect.MessageDescriptor) bool {
	d, _ := proto.GetExtension(md.Options(), validate.E_Disabled).(bool)
	i, _ := proto.GetExtension(md.Options(), validate.E_Ignored).(bool)
	return d || i
}

// emitRules writes the checks of a field's rules on the value expression v
// (a field of the message, or of a oneof's wrapper), reporting at path (a
// Go expression).
func (g *generator) emitRules(m *message, f field, v, path string) {
	r := fieldRules(f.fd)
	if r == nil || rulesDisabled(m.desc) {
		return
	}
	where := fmt.Sprintf("%s.%s", m.desc.FullName(), f.fd.Name())
	if mr := r.GetMessage(); mr != nil {
		if mr.GetRequired() {
			g.p("if %s == nil { return ruleErr(%s, \"value is required\") }", v, path)
		}
		if mr.GetSkip() {
			g.fail("%s: message.skip is not implemented", where)
		}
	}
	if r.GetType() == nil {
		return
	}
	if f.fd.IsMap() {
		mr := r.GetMap()
		if mr == nil {
			g.fail("%s: %T on a map field", where, r.GetType())
			return
		}
		if mr.MinPairs != nil || mr.MaxPairs != nil || mr.GetNoSparse() || mr.GetIgnoreEmpty() || mr.GetValues() != nil {
			g.fail("%s: map rules %v are not all implemented", where, mr)
		}
		if keys := mr.GetKeys(); keys != nil && keys.GetType() != nil {
			g.p("for k := range %s {", v)
			g.scalarRules(field{fd: f.fd.MapKey()}, keys, "k", fmt.Sprintf("key(%s, k)", path), where)
			g.p("}")
		}
		return
	}
	if f.fd.IsList() {
		rep := r.GetRepeated()
		if rep == nil {
			g.fail("%s: %T on a repeated field", where, r.GetType())
			return
		}
		if rep.GetUnique() || rep.GetIgnoreEmpty() {
			g.fail("%s: repeated unique and ignore_empty are not implemented", where)
		}
		if rep.MinItems != nil {
			g.p("if len(%s) < %d { return ruleErr(%s, \"value must contain at least %d item(s)\") }", v, rep.GetMinItems(), path, rep.GetMinItems())
		}
		if rep.MaxItems != nil {
			g.p("if len(%s) > %d { return ruleErr(%s, \"value must contain no more than %d item(s)\") }", v, rep.GetMaxItems(), path, rep.GetMaxItems())
		}
		if items := rep.GetItems(); items != nil && items.GetType() != nil {
			g.p("for i, x := range %s {", v)
			g.scalarRules(f, items, "x", fmt.Sprintf("index(%s, i)", path), where)
			g.p("}")
		}
		return
	}
	val := v
	if md := f.fd.Message(); md != nil && strings.HasPrefix(string(md.FullName()), "google.protobuf.") && strings.HasSuffix(string(md.Name()), "Value") {
		// A wrapper: the rules are its value's.
		g.p("if %s != nil {", v)
		g.scalarRules(f, r, v+".Value", path, where)
		g.p("}")
		return
	}
	g.scalarRules(f, r, val, path, where)
}

func (g *generator) fail(format string, args ...any) {
	if g.err == nil {
		g.err = fmt.Errorf(format, args...)
	}
}

// scalarRules writes the checks of a single value's rules.
func (g *generator) scalarRules(f field, r *validate.FieldRules, v, path, where string) {
	switch t := r.GetType().(type) {
	case *validate.FieldRules_String_:
		g.stringRules(t.String_, v, path, where)
	case *validate.FieldRules_Uint32:
		x := t.Uint32
		g.numberRules(v, path, where, x.Const, x.Gt, x.Gte, x.Lt, x.Lte, x.In, x.NotIn, x.IgnoreEmpty)
	case *validate.FieldRules_Uint64:
		x := t.Uint64
		g.numberRules(v, path, where, x.Const, x.Gt, x.Gte, x.Lt, x.Lte, x.In, x.NotIn, x.IgnoreEmpty)
	case *validate.FieldRules_Int32:
		x := t.Int32
		g.numberRules(v, path, where, x.Const, x.Gt, x.Gte, x.Lt, x.Lte, x.In, x.NotIn, x.IgnoreEmpty)
	case *validate.FieldRules_Int64:
		x := t.Int64
		g.numberRules(v, path, where, x.Const, x.Gt, x.Gte, x.Lt, x.Lte, x.In, x.NotIn, x.IgnoreEmpty)
	case *validate.FieldRules_Double:
		x := t.Double
		g.numberRules(v, path, where, x.Const, x.Gt, x.Gte, x.Lt, x.Lte, x.In, x.NotIn, x.IgnoreEmpty)
	case *validate.FieldRules_Bool:
		if t.Bool.Const != nil {
			g.p("if %s != %v { return ruleErr(%s, \"value must equal %v\") }", v, t.Bool.GetConst(), path, t.Bool.GetConst())
		}
	case *validate.FieldRules_Enum:
		g.enumRules(f, t.Enum, v, path, where)
	case *validate.FieldRules_Duration:
		g.durationRules(t.Duration, v, path, where)
	case *validate.FieldRules_Any:
		a := t.Any
		if a.GetRequired() {
			g.p("if %s == nil { return ruleErr(%s, \"value is required\") }", v, path)
		}
		if len(a.In) > 0 || len(a.NotIn) > 0 {
			g.fail("%s: any in/not_in are not implemented", where)
		}
	default:
		g.fail("%s: rules %T are not implemented", where, t)
	}
}

func (g *generator) stringRules(s *validate.StringRules, v, path, where string) {
	if s.GetIgnoreEmpty() {
		g.p("if %s != \"\" {", v)
		defer g.p("}")
	}
	if s.MinLen != nil && s.GetMinLen() > 0 {
		g.p("if runes(%s) < %d { return ruleErr(%s, \"value length must be at least %d runes\") }", v, s.GetMinLen(), path, s.GetMinLen())
	}
	if s.MaxLen != nil {
		g.p("if runes(%s) > %d { return ruleErr(%s, \"value length must be at most %d runes\") }", v, s.GetMaxLen(), path, s.GetMaxLen())
	}
	if s.MinBytes != nil && s.GetMinBytes() > 0 {
		g.p("if len(%s) < %d { return ruleErr(%s, \"value length must be at least %d bytes\") }", v, s.GetMinBytes(), path, s.GetMinBytes())
	}
	if s.MaxBytes != nil {
		g.p("if len(%s) > %d { return ruleErr(%s, \"value length must be at most %d bytes\") }", v, s.GetMaxBytes(), path, s.GetMaxBytes())
	}
	if s.Pattern != nil {
		name := g.pattern(s.GetPattern())
		g.p("if !%s.MatchString(%s) { return ruleErr(%s, %q) }", name, v, path, "value does not match regex pattern "+strconv.Quote(s.GetPattern()))
	}
	if len(s.In) > 0 {
		quoted := make([]string, len(s.In))
		for i, x := range s.In {
			quoted[i] = strconv.Quote(x)
		}
		g.p("switch %s { case %s: default: return ruleErr(%s, %q) }", v, strings.Join(quoted, ", "), path, "value must be in list "+fmt.Sprint(s.In))
	}
	switch wk := s.GetWellKnown().(type) {
	case nil:
	case *validate.StringRules_WellKnownRegex:
		strict := s.Strict == nil || s.GetStrict()
		switch wk.WellKnownRegex {
		case validate.KnownRegex_HTTP_HEADER_NAME:
			g.p("if !headerName(%s, %v) { return ruleErr(%s, \"value must be a valid HTTP header name\") }", v, strict, path)
		case validate.KnownRegex_HTTP_HEADER_VALUE:
			g.p("if !headerValue(%s, %v) { return ruleErr(%s, \"value must be a valid HTTP header value\") }", v, strict, path)
		default:
			g.fail("%s: well_known_regex %v is not implemented", where, wk.WellKnownRegex)
		}
	default:
		g.fail("%s: well_known %T is not implemented", where, wk)
	}
	if s.Const != nil || s.Len != nil || s.LenBytes != nil || s.Prefix != nil || s.Suffix != nil ||
		s.Contains != nil || s.NotContains != nil || len(s.NotIn) > 0 {
		g.fail("%s: string rules %v are not all implemented", where, s)
	}
}

// numberRules writes the comparisons of a number; the bounds are pointers
// to the rule's values, nil when unset.
func (g *generator) numberRules(v, path, where string, constant, gt, gte, lt, lte any, in, notIn any, ignoreEmpty *bool) {
	val := func(p any) (string, bool) {
		switch p := p.(type) {
		case *uint32:
			if p != nil {
				return strconv.FormatUint(uint64(*p), 10), true
			}
		case *uint64:
			if p != nil {
				return strconv.FormatUint(*p, 10), true
			}
		case *int32:
			if p != nil {
				return strconv.FormatInt(int64(*p), 10), true
			}
		case *int64:
			if p != nil {
				return strconv.FormatInt(*p, 10), true
			}
		case *float64:
			if p != nil {
				return strconv.FormatFloat(*p, 'g', -1, 64), true
			}
		}
		return "", false
	}
	if ignoreEmpty != nil && *ignoreEmpty {
		g.p("if %s != 0 {", v)
		defer g.p("}")
	}
	lo, loOK := val(gt)
	loIncl := false
	if !loOK {
		lo, loOK = val(gte)
		loIncl = loOK
	}
	hi, hiOK := val(lt)
	hiIncl := false
	if !hiOK {
		hi, hiOK = val(lte)
		hiIncl = hiOK
	}
	if loOK && hiOK {
		l, _ := strconv.ParseFloat(lo, 64)
		h, _ := strconv.ParseFloat(hi, 64)
		if h <= l {
			g.fail("%s: exclusive ranges are not implemented", where)
			return
		}
	}
	if loOK {
		op, word := "<=", "greater than"
		if loIncl {
			op, word = "<", "greater than or equal to"
		}
		g.p("if %s %s %s { return ruleErr(%s, \"value must be %s %s\") }", v, op, lo, path, word, lo)
	}
	if hiOK {
		op, word := ">=", "less than"
		if hiIncl {
			op, word = ">", "less than or equal to"
		}
		g.p("if %s %s %s { return ruleErr(%s, \"value must be %s %s\") }", v, op, hi, path, word, hi)
	}
	if c, ok := val(constant); ok {
		g.p("if %s != %s { return ruleErr(%s, \"value must equal %s\") }", v, c, path, c)
	}
	if fmt.Sprint(in) != "[]" || fmt.Sprint(notIn) != "[]" {
		g.fail("%s: number in/not_in are not implemented", where)
	}
}

func (g *generator) enumRules(f field, e *validate.EnumRules, v, path, where string) {
	ed := f.fd.Enum()
	if e.GetDefinedOnly() {
		var nums []string
		seen := map[protoreflect.EnumNumber]bool{}
		for i := 0; i < ed.Values().Len(); i++ {
			n := ed.Values().Get(i).Number()
			if !seen[n] {
				seen[n] = true
				nums = append(nums, strconv.Itoa(int(n)))
			}
		}
		g.p("switch %s { case %s: default: return ruleErr(%s, \"value must be one of the defined enum values\") }", v, strings.Join(nums, ", "), path)
	}
	if len(e.NotIn) > 0 {
		var nums []string
		for _, n := range e.NotIn {
			nums = append(nums, strconv.Itoa(int(n)))
		}
		g.p("switch %s { case %s: return ruleErr(%s, \"value must not be in list %v\") }", v, strings.Join(nums, ", "), path, e.NotIn)
	}
	if e.Const != nil || len(e.In) > 0 {
		g.fail("%s: enum const and in are not implemented", where)
	}
}

func (g *generator) durationRules(d *validate.DurationRules, v, path, where string) {
	if d.GetRequired() {
		g.p("if %s == nil { return ruleErr(%s, \"value is required\") }", v, path)
	}
	if d.Const != nil || len(d.In) > 0 || len(d.NotIn) > 0 {
		g.fail("%s: duration const, in and not_in are not implemented", where)
	}
	bound := func(b *durationpb.Duration) string {
		return strconv.FormatInt(int64(b.AsDuration()), 10)
	}
	text := func(b *durationpb.Duration) string { return b.AsDuration().String() }
	if d.Gt == nil && d.Gte == nil && d.Lt == nil && d.Lte == nil {
		return
	}
	g.p("if %s != nil {", v)
	g.p("d, ok := duration(%s)", v)
	g.p("if !ok { return ruleErr(%s, \"value is not a valid duration\") }", path)
	if d.Gt != nil {
		g.p("if d <= %s { return ruleErr(%s, \"value must be greater than %s\") }", bound(d.Gt), path, text(d.Gt))
	}
	if d.Gte != nil {
		g.p("if d < %s { return ruleErr(%s, \"value must be greater than or equal to %s\") }", bound(d.Gte), path, text(d.Gte))
	}
	if d.Lt != nil {
		if d.Lt.AsDuration() == time.Duration(1<<63-1) {
			g.fail("%s: a duration bound beyond time.Duration", where)
		}
		g.p("if d >= %s { return ruleErr(%s, \"value must be less than %s\") }", bound(d.Lt), path, text(d.Lt))
	}
	if d.Lte != nil {
		g.p("if d > %s { return ruleErr(%s, \"value must be less than or equal to %s\") }", bound(d.Lte), path, text(d.Lte))
	}
	g.p("}")
}

// pattern returns the name of a package variable holding the compiled
// pattern, declaring it on first use.
func (g *generator) pattern(re string) string {
	if g.patterns == nil {
		g.patterns = map[string]string{}
	}
	if name, ok := g.patterns[re]; ok {
		return name
	}
	name := fmt.Sprintf("pattern%d", len(g.patterns))
	g.patterns[re] = name
	return name
}
