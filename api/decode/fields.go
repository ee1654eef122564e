package decode

import (
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// fieldPath is the path of the field name below p. A name that is not a
// plain identifier is written as a quoted key, so the path stays readable.
func fieldPath(p *v1alpha1.Path, name string) *v1alpha1.Path {
	if !isIdentifier(name) {
		return p.Key(name)
	}
	if p == nil {
		return v1alpha1.NewPath(name)
	}
	return p.Child(name)
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// structFields is what the decoder needs of a struct type: its fields by
// JSON name, and the names in declaration order for suggestions.
type structFields struct {
	index map[string][]int
	names []string
}

var structFieldsCache sync.Map // reflect.Type -> *structFields

func fieldsOf(t reflect.Type) *structFields {
	if f, ok := structFieldsCache.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{index: make(map[string][]int)}
	f.collect(t, nil)
	actual, _ := structFieldsCache.LoadOrStore(t, f)
	return actual.(*structFields)
}

// collect adds the fields of t, flattening embedded structs without a JSON
// name as encoding/json does.
func (f *structFields) collect(t reflect.Type, prefix []int) {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		index := append(slices.Clone(prefix), i)
		if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
			f.collect(sf.Type, index)
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if _, dup := f.index[name]; dup {
			continue
		}
		f.index[name] = index
		f.names = append(f.names, name)
	}
}
