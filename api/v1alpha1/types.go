// Package v1alpha1 holds Weft's resources (apiVersion weft.dev/v1alpha1): the
// envelope every kind shares, the kind registry, and each kind's spec with its
// defaults and validation. Adding a kind is one file: a spec type, its
// Default and Validate, and a Register call in init.
package v1alpha1

// APIVersion is the only apiVersion this package accepts.
const APIVersion = "weft.dev/v1alpha1"

// DefaultNamespace is the namespace of a namespaced object that names none.
const DefaultNamespace = "default"

// ObjectMeta is the metadata every resource carries.
type ObjectMeta struct {
	Name string `json:"name"`
	// Namespace is empty for cluster-scoped kinds and defaults to "default" for the others.
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// ResourceVersion is the store's revision of the object; set by the server, ignored on input.
	ResourceVersion int64 `json:"resourceVersion,omitempty"`
}

// Object is one resource: the envelope with its kind's spec.
type Object struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   ObjectMeta `json:"metadata"`
	// Spec is a pointer to the kind's spec type, such as *MeshSpec.
	Spec Spec `json:"spec"`
}

// Spec is what each kind's spec type implements.
type Spec interface {
	// Default fills in unset fields with their defaults.
	Default()
	// Validate checks a defaulted spec; paths in the returned errors start at path.
	Validate(path *Path) ErrorList
}

// Kind describes one resource kind.
type Kind struct {
	// Name is the kind as written in YAML, such as "Mesh".
	Name string
	// Plural and Aliases are the other names the CLI accepts ("meshes").
	Plural  string
	Aliases []string
	// Namespaced is false for cluster-scoped kinds such as Mesh.
	Namespaced bool
	// FixedName, if set, is the only name an object of the kind may have:
	// the kind is a singleton, as Mesh ("default") is.
	FixedName string
	// NewSpec returns a new, empty spec of the kind.
	NewSpec func() Spec
}
