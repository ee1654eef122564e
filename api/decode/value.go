package decode

import (
	"encoding"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// YAML's core tags, as yaml.Node.ShortTag reports them.
const (
	nullTag      = "!!null"
	boolTag      = "!!bool"
	strTag       = "!!str"
	intTag       = "!!int"
	floatTag     = "!!float"
	timestampTag = "!!timestamp"
	binaryTag    = "!!binary"
	mapTag       = "!!map"
	seqTag       = "!!seq"
	mergeTag     = "!!merge"
)

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// decoder walks the nodes of one document against Go types, the way
// encoding/json walks JSON values: fields are matched by their json tags.
// Unlike yaml.Node.Decode it is strict and keeps the path and line of every
// problem.
type decoder struct {
	errs      v1alpha1.ErrorList
	limit     int  // the most problems to keep
	truncated bool // whether problems were dropped past limit
	failed    int  // problems found while decoding, kept or not
	// lines maps each field path seen to the line of its key (or, for a
	// list element, of the element), to place validation errors.
	lines map[string]int
	// unread holds the paths of the fields that could not be read, and of
	// those a misspelt field was probably meant to be. They hold zero
	// values, which validation would report again as missing or wrong.
	unread []string
}

// fail records a problem with the node n at path p.
func (d *decoder) fail(p *v1alpha1.Path, n *yaml.Node, format string, args ...any) {
	fe := v1alpha1.Invalid(p, format, args...)
	fe.Line = n.Line
	d.failed++
	d.unread = append(d.unread, fe.Field)
	d.add(fe)
}

func (d *decoder) add(fe *v1alpha1.FieldError) {
	if len(d.errs) >= d.limit {
		d.truncated = true
		return
	}
	d.errs = append(d.errs, fe)
}

func (d *decoder) record(p *v1alpha1.Path, n *yaml.Node) {
	d.lines[p.String()] = n.Line
}

// value decodes n into v, which must be settable, and reports whether it did
// so without a problem.
func (d *decoder) value(n *yaml.Node, v reflect.Value, p *v1alpha1.Path) bool {
	before := d.failed
	d.decode(n, v, p)
	return d.failed == before
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, p *v1alpha1.Path) {
	if !d.plain(n, p) {
		return
	}
	if isNull(n) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice:
			v.SetZero()
		default:
			d.typeError(n, v.Type(), p)
		}
		return
	}
	if v.Kind() == reflect.Pointer {
		elem := reflect.New(v.Type().Elem())
		d.decode(n, elem.Elem(), p)
		v.Set(elem)
		return
	}
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		if n.Kind != yaml.ScalarNode {
			d.typeError(n, v.Type(), p)
		} else if err := u.UnmarshalText([]byte(n.Value)); err != nil {
			d.fail(p, n, "%s", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.String:
		if !isString(n) {
			d.typeError(n, v.Type(), p)
		} else if d.noControl(n, p) {
			v.SetString(n.Value)
		}
	case reflect.Bool:
		var b bool
		if !isScalar(n, boolTag) || n.Decode(&b) != nil {
			d.typeError(n, v.Type(), p)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		d.integer(n, v, p)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		d.unsigned(n, v, p)
	case reflect.Float32, reflect.Float64:
		d.float(n, v, p)
	case reflect.Struct:
		d.structure(n, v, p)
	case reflect.Slice:
		d.list(n, v, p)
	case reflect.Map:
		d.mapping(n, v, p)
	default:
		// Only a programming error in an API type can get here.
		d.fail(p, n, "cannot decode into Go type %s", v.Type())
	}
}

// plain rejects tags outside YAML's core schema, such as !Ref: a resource
// has no use for them, and ignoring one would misread the value.
func (d *decoder) plain(n *yaml.Node, p *v1alpha1.Path) bool {
	tag := n.ShortTag()
	var ok bool
	switch n.Kind {
	case yaml.MappingNode:
		ok = tag == mapTag
	case yaml.SequenceNode:
		ok = tag == seqTag
	case yaml.ScalarNode:
		ok = slices.Contains([]string{nullTag, boolTag, strTag, intTag, floatTag, timestampTag, binaryTag, mergeTag}, tag)
	}
	if !ok {
		d.fail(p, n, "unsupported YAML tag %s", quote(n.Tag))
	}
	return ok
}

// pairs calls fn for each key of the mapping n with its value, after
// checking the key: a plain scalar, not a merge key, not seen before.
// keyPath makes the path of a key below p, to report a duplicate.
func (d *decoder) pairs(n *yaml.Node, p *v1alpha1.Path, keyPath func(*v1alpha1.Path, string) *v1alpha1.Path,
	fn func(key, val *yaml.Node, name string)) {
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if !d.plain(key, p) {
			continue
		}
		if key.Kind != yaml.ScalarNode {
			d.fail(p, key, "expected a string key, got %s", describe(key))
			continue
		}
		if key.ShortTag() == mergeTag {
			d.fail(p, key, "merge keys (<<) are not supported")
			continue
		}
		if first, dup := seen[key.Value]; dup {
			d.fail(keyPath(p, key.Value), key, "duplicate key: already set on line %d", first)
			continue
		}
		seen[key.Value] = key.Line
		fn(key, val, key.Value)
	}
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, p *v1alpha1.Path) {
	if n.Kind != yaml.MappingNode {
		d.typeError(n, v.Type(), p)
		return
	}
	fields := fieldsOf(v.Type())
	d.pairs(n, p, fieldPath, func(key, val *yaml.Node, name string) {
		index, ok := fields.index[name]
		if !ok {
			d.unknownField(p, key, name, fields.names)
			return
		}
		fp := fieldPath(p, name)
		d.record(fp, key)
		d.decode(val, v.FieldByIndex(index), fp)
	})
}

func (d *decoder) unknownField(p *v1alpha1.Path, key *yaml.Node, name string, known []string) {
	meant := closest(name, known)
	d.fail(fieldPath(p, name), key, "unknown field%s", didYouMean(meant))
	if meant != "" {
		d.unread = append(d.unread, fieldPath(p, meant).String())
	}
}

// list decodes a sequence. An empty one leaves the slice nil, so that an
// object reads the same after a trip through JSON.
func (d *decoder) list(n *yaml.Node, v reflect.Value, p *v1alpha1.Path) {
	if n.Kind != yaml.SequenceNode {
		d.typeError(n, v.Type(), p)
		return
	}
	if len(n.Content) == 0 {
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		ip := p.Index(i)
		d.record(ip, item)
		d.decode(item, s.Index(i), ip)
	}
	v.Set(s)
}

// mapping decodes a mapping with string keys. An empty one leaves the map
// nil, as list does.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, p *v1alpha1.Path) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(p, n, "cannot decode into Go type %s", t)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.typeError(n, t, p)
		return
	}
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	d.pairs(n, p, (*v1alpha1.Path).Key, func(key, val *yaml.Node, name string) {
		if !isScalar(key, strTag) {
			d.fail(p, key, "expected a string key, got %s%s", describe(key), quoteHint(key))
			return
		}
		if !d.noControl(key, p) {
			return
		}
		kp := p.Key(name)
		d.record(kp, key)
		elem := reflect.New(t.Elem()).Elem()
		d.decode(val, elem, kp)
		m.SetMapIndex(reflect.ValueOf(name).Convert(t.Key()), elem)
	})
	if m.Len() > 0 {
		v.Set(m)
	}
}
