package decode

import (
	"fmt"
	"math"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// noControl rejects a string holding a control character other than tab and
// line breaks. Such a string is no use in a resource, would reach terminals
// in command output, and could not be written back as YAML: quoted-string
// escapes can make one, but JSON output carries it raw, where YAML refuses
// it (or, for U+0085, reads a line break).
func (d *decoder) noControl(n *yaml.Node, p *v1alpha1.Path) bool {
	for _, r := range n.Value {
		if !printable(r) || r == 0x85 {
			d.fail(p, n, "control character %U is not allowed", r)
			return false
		}
	}
	return true
}

// integer decodes a signed integer, rejecting values its type cannot hold.
func (d *decoder) integer(n *yaml.Node, v reflect.Value, p *v1alpha1.Path) {
	if !d.integral(n, v, p) {
		return
	}
	var i int64
	if err := n.Decode(&i); err != nil || v.OverflowInt(i) {
		d.outOfRange(n, v, p)
		return
	}
	v.SetInt(i)
}

// unsigned decodes an unsigned integer, rejecting values its type cannot hold.
func (d *decoder) unsigned(n *yaml.Node, v reflect.Value, p *v1alpha1.Path) {
	if !d.integral(n, v, p) {
		return
	}
	var u uint64
	if err := n.Decode(&u); err != nil || v.OverflowUint(u) {
		d.outOfRange(n, v, p)
		return
	}
	v.SetUint(u)
}

// integral checks that n is written as an integer. YAML reads an integer
// too big for 64 bits as a float, so digits alone also pass here, to be
// reported as out of range rather than as a number.
func (d *decoder) integral(n *yaml.Node, v reflect.Value, p *v1alpha1.Path) bool {
	switch {
	case isScalar(n, intTag):
		return true
	case isScalar(n, floatTag) && isDigits(n.Value):
		d.outOfRange(n, v, p)
	default:
		d.typeError(n, v.Type(), p)
	}
	return false
}

func (d *decoder) outOfRange(n *yaml.Node, v reflect.Value, p *v1alpha1.Path) {
	d.fail(p, n, "integer %s is out of range for %s", clip(n.Value), v.Kind())
}

func (d *decoder) float(n *yaml.Node, v reflect.Value, p *v1alpha1.Path) {
	var f float64
	if (!isScalar(n, floatTag) && !isScalar(n, intTag)) || n.Decode(&f) != nil {
		d.typeError(n, v.Type(), p)
		return
	}
	if math.IsInf(f, 0) || math.IsNaN(f) || v.OverflowFloat(f) {
		d.fail(p, n, "number %s is out of range for %s", clip(n.Value), v.Kind())
		return
	}
	v.SetFloat(f)
}

// typeError reports a node of the wrong shape for the Go type t.
func (d *decoder) typeError(n *yaml.Node, t reflect.Type, p *v1alpha1.Path) {
	want := expected(t)
	hint := ""
	if want == "a string" {
		hint = quoteHint(n)
	}
	d.fail(p, n, "expected %s, got %s%s", want, describe(n), hint)
}

// expected names what YAML a Go type is written as.
func expected(t reflect.Type) string {
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice:
		return "a list"
	case reflect.Pointer:
		return expected(t.Elem())
	}
	return t.String()
}

// describe names what a node holds, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	switch tag := n.ShortTag(); tag {
	case nullTag:
		return "null"
	case strTag:
		return "string " + quote(n.Value)
	case intTag:
		return "integer " + clip(n.Value)
	case floatTag:
		return "number " + clip(n.Value)
	case boolTag:
		return "boolean " + clip(n.Value)
	case timestampTag:
		return "timestamp " + clip(n.Value)
	default:
		return "value " + quote(n.Value) + " tagged " + clip(tag)
	}
}

// quoteHint tells how to write a scalar that YAML read as something other
// than a string, such as a label value of 1.0, as a string.
func quoteHint(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode || n.Style&yaml.TaggedStyle != 0 || isNull(n) || isString(n) ||
		len(n.Value) > maxQuoted || strings.ContainsAny(n.Value, "\"\\\n") {
		return ""
	}
	return fmt.Sprintf(" (write \"%s\" for a string)", n.Value)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == nullTag
}

// isString reports whether n is a string. A plain "<<" is one too: YAML
// reads it as a merge key, which only means something as a key.
func isString(n *yaml.Node) bool {
	return isScalar(n, strTag) || isScalar(n, mergeTag)
}

func isScalar(n *yaml.Node, tag string) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == tag
}

// isDigits reports whether s is an optionally signed run of decimal digits.
func isDigits(s string) bool {
	s = strings.TrimLeft(s, "+-")
	return s != "" && strings.Trim(s, "0123456789_") == ""
}
