package decode

import (
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// envelopeFields are the top-level fields of every object.
var envelopeFields = []string{"apiVersion", "kind", "metadata", "spec"}

// object decodes the envelope at root. The spec is decoded into the spec type
// of the kind, so it is skipped, and the document is bad, when the kind is
// missing or unknown.
func (d *decoder) object(root *yaml.Node) *v1alpha1.Object {
	obj := new(v1alpha1.Object)
	d.lines[""] = root.Line
	if !d.noAliases(root) || !d.plain(root, nil) {
		return obj
	}
	if root.Kind != yaml.MappingNode {
		d.fail(nil, root, "expected a mapping with apiVersion, kind, metadata and spec, got %s", describe(root))
		return obj
	}
	fields := make(map[string]*yaml.Node, len(envelopeFields))
	d.pairs(root, nil, fieldPath, func(key, val *yaml.Node, name string) {
		if !slices.Contains(envelopeFields, name) {
			d.unknownField(nil, key, name, envelopeFields)
			return
		}
		d.record(v1alpha1.NewPath(name), key)
		fields[name] = val
	})

	apiVersion := v1alpha1.NewPath("apiVersion")
	if n, ok := fields["apiVersion"]; !ok {
		d.fail(apiVersion, root, "is required: use %q", v1alpha1.APIVersion)
	} else if d.value(n, reflect.ValueOf(&obj.APIVersion).Elem(), apiVersion) && obj.APIVersion != v1alpha1.APIVersion {
		d.fail(apiVersion, n, "unsupported value %s: must be %q", quote(obj.APIVersion), v1alpha1.APIVersion)
	}

	kindPath := v1alpha1.NewPath("kind")
	var kind v1alpha1.Kind
	if n, ok := fields["kind"]; !ok {
		d.fail(kindPath, root, "is required: one of %s", kindNames())
	} else if d.value(n, reflect.ValueOf(&obj.Kind).Elem(), kindPath) {
		var known bool
		if kind, known = v1alpha1.Lookup(obj.Kind); !known || kind.Name != obj.Kind {
			d.fail(kindPath, n, "unknown kind %s: must be one of %s%s", quote(obj.Kind), kindNames(), suggestKind(obj.Kind, kind))
			kind = v1alpha1.Kind{}
		}
	}

	if n, ok := fields["metadata"]; ok {
		d.decode(n, reflect.ValueOf(&obj.Metadata).Elem(), v1alpha1.NewPath("metadata"))
	}
	if kind.NewSpec != nil {
		obj.Spec = kind.NewSpec()
		if n, ok := fields["spec"]; ok {
			d.decode(n, reflect.ValueOf(obj.Spec).Elem(), v1alpha1.NewPath("spec"))
		}
	}
	return obj
}

// noAliases reports every anchor and alias in the tree at n, wherever it is,
// and whether there were none. The walk that follows never meets one, so it
// cannot be made to expand a small input into a large one.
func (d *decoder) noAliases(n *yaml.Node) bool {
	ok := true
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.fail(nil, n, "YAML anchors and aliases are not supported")
		ok = false
	}
	for _, c := range n.Content {
		ok = d.noAliases(c) && ok
	}
	return ok
}

// kindNames lists the registered kinds for error messages.
func kindNames() string {
	var names []string
	for _, k := range v1alpha1.Kinds() {
		names = append(names, k.Name)
	}
	return strings.Join(names, ", ")
}

// suggestKind proposes the kind the user probably meant: the one Lookup
// found under another spelling ("service", "svc"), else the nearest name.
func suggestKind(name string, found v1alpha1.Kind) string {
	if found.Name != "" {
		return didYouMean(found.Name)
	}
	var names []string
	for _, k := range v1alpha1.Kinds() {
		names = append(names, k.Name)
	}
	return didYouMean(closest(name, names))
}

// lineOf returns the line of the field at path, or of its nearest ancestor
// that the document has when the field itself is absent.
func (d *decoder) lineOf(path string) int {
	best, line := "", d.lines[""]
	for p, l := range d.lines {
		if within(path, p) && len(p) >= len(best) {
			best, line = p, l
		}
	}
	return line
}
