package v1alpha1

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
)

// KindInfo returns the registered kind of o, or the zero Kind when o.Kind
// names none.
func (o *Object) KindInfo() Kind {
	k, _ := kindByName(o.Kind)
	return k
}

// Ref names the object as messages show it: "Service default/payments" for a
// namespaced kind, "Mesh default" for a cluster-scoped one.
func (o *Object) Ref() string {
	name := o.Metadata.Name
	if name == "" {
		return o.Kind
	}
	if k, ok := kindByName(o.Kind); ok && k.Namespaced {
		ns := o.Metadata.Namespace
		if ns == "" {
			ns = DefaultNamespace
		}
		name = ns + "/" + name
	}
	if o.Kind == "" {
		return name
	}
	return o.Kind + " " + name
}

// Default fills in what the user may leave out: the namespace of a
// namespaced object, an empty spec when there is none, and the spec's own
// defaults. It does nothing for an unknown kind.
func (o *Object) Default() {
	k, ok := kindByName(o.Kind)
	if !ok {
		return
	}
	if k.Namespaced && o.Metadata.Namespace == "" {
		o.Metadata.Namespace = DefaultNamespace
	}
	if isNilSpec(o.Spec) {
		o.Spec = k.NewSpec()
	}
	o.Spec.Default()
}

// Validate checks a defaulted object and returns every problem it finds.
func (o *Object) Validate() ErrorList {
	var errs ErrorList
	switch o.APIVersion {
	case APIVersion:
	case "":
		errs = append(errs, Invalid(NewPath("apiVersion"), "is required: use %q", APIVersion))
	default:
		errs = append(errs, Invalid(NewPath("apiVersion"), "unsupported value %s: must be %q", quote(o.APIVersion), APIVersion))
	}
	k, known := kindByName(o.Kind)
	switch {
	case known:
	case o.Kind == "":
		errs = append(errs, Invalid(NewPath("kind"), "is required: one of %s", kindList()))
	default:
		errs = append(errs, Invalid(NewPath("kind"), "unknown kind %s: must be one of %s", quote(o.Kind), kindList()))
	}
	errs = append(errs, validateMeta(NewPath("metadata"), &o.Metadata, k)...)
	if !known {
		return errs
	}
	specPath := NewPath("spec")
	switch want := reflect.TypeOf(k.NewSpec()); {
	case isNilSpec(o.Spec):
		errs = append(errs, Required(specPath))
	case reflect.TypeOf(o.Spec) != want:
		errs = append(errs, Invalid(specPath, "is a %s, but a %s needs a %s", reflect.TypeOf(o.Spec), k.Name, want))
	default:
		errs = append(errs, o.Spec.Validate(specPath)...)
	}
	return errs
}

// validateMeta checks the metadata of an object of kind k; k is the zero Kind
// when the object's kind is unknown, and then only the rules every kind
// shares are checked.
func validateMeta(path *Path, m *ObjectMeta, k Kind) ErrorList {
	var errs ErrorList
	name := path.Child("name")
	switch {
	case m.Name == "":
		errs = append(errs, Required(name))
	case k.FixedName != "" && m.Name != k.FixedName:
		errs = append(errs, Invalid(name, "must be %q, the only name a %s may have", k.FixedName, k.Name))
	case !isDNSLabel(m.Name):
		errs = append(errs, Invalid(name, "%s is not a valid name: use %s", quote(m.Name), dnsLabelRule))
	}
	ns := path.Child("namespace")
	switch {
	case k.Name == "":
		// Whether a namespace belongs here depends on the kind.
	case !k.Namespaced && m.Namespace != "":
		errs = append(errs, Invalid(ns, "must be empty: %s is cluster-scoped", k.Name))
	case k.Namespaced && m.Namespace == "":
		errs = append(errs, Required(ns))
	case k.Namespaced && !isDNSLabel(m.Namespace):
		errs = append(errs, Invalid(ns, "%s is not a valid namespace: use %s", quote(m.Namespace), dnsLabelRule))
	}
	errs = append(errs, validateLabels(path.Child("labels"), m.Labels)...)
	errs = append(errs, validateAnnotations(path.Child("annotations"), m.Annotations)...)
	if m.ResourceVersion < 0 {
		errs = append(errs, Invalid(path.Child("resourceVersion"), "must not be negative"))
	}
	return errs
}

// isNilSpec reports whether s holds no spec, including a nil pointer of a
// spec type.
func isNilSpec(s Spec) bool {
	if s == nil {
		return true
	}
	v := reflect.ValueOf(s)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// MarshalJSON writes the object in its plain struct form.
func (o Object) MarshalJSON() ([]byte, error) {
	type plain Object // plain has Object's fields but not this method
	return json.Marshal(plain(o))
}

// UnmarshalJSON reads an object, decoding its spec into the spec type of its
// kind. It is lenient, as it reads data this package wrote (such as stored
// objects); untrusted input goes through package decode instead.
func (o *Object) UnmarshalJSON(b []byte) error {
	var raw struct {
		APIVersion string          `json:"apiVersion"`
		Kind       string          `json:"kind"`
		Metadata   ObjectMeta      `json:"metadata"`
		Spec       json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("v1alpha1: decode object: %w", err)
	}
	k, ok := kindByName(raw.Kind)
	if !ok {
		return fmt.Errorf("v1alpha1: decode object: unknown kind %s (known kinds: %s)", quote(raw.Kind), kindList())
	}
	spec := k.NewSpec()
	if len(raw.Spec) > 0 && !bytes.Equal(raw.Spec, []byte("null")) {
		if err := json.Unmarshal(raw.Spec, spec); err != nil {
			return fmt.Errorf("v1alpha1: decode spec of %s %s: %w", k.Name, quote(raw.Metadata.Name), err)
		}
	}
	*o = Object{APIVersion: raw.APIVersion, Kind: raw.Kind, Metadata: raw.Metadata, Spec: spec}
	return nil
}

var (
	_ json.Marshaler   = Object{}
	_ json.Unmarshaler = (*Object)(nil)
)
