package v1alpha1

import (
	"fmt"
	"slices"
	"strings"
)

// The registry is filled by Register calls from init functions and only read
// afterwards, so it needs no lock (as with grpc-go's balancer.Register).
var (
	kindsByName = make(map[string]Kind)   // Kind.Name, exactly as written in YAML
	kindNames   = make(map[string]string) // lower-cased Name, Plural or alias -> Name
)

// Register adds a kind to the registry. It must be called from an init
// function, and panics when the kind is incomplete or any of its names is
// already taken, because either is a programming error.
func Register(k Kind) {
	if k.Name == "" || k.NewSpec == nil {
		panic(fmt.Sprintf("v1alpha1: Register(%q): a kind needs a Name and a NewSpec", k.Name))
	}
	names := k.names()
	for _, n := range names {
		if other, taken := kindNames[strings.ToLower(n)]; taken {
			panic(fmt.Sprintf("v1alpha1: Register(%q): name %q is already used by kind %s", k.Name, n, other))
		}
	}
	k.Aliases = slices.Clone(k.Aliases)
	kindsByName[k.Name] = k
	for _, n := range names {
		kindNames[strings.ToLower(n)] = k.Name
	}
}

// Lookup finds a kind by its name, plural or an alias, in any case, as the
// CLI accepts them: "Service", "services" and "svc" all find Service.
func Lookup(name string) (Kind, bool) {
	canonical, ok := kindNames[strings.ToLower(name)]
	if !ok {
		return Kind{}, false
	}
	return kindByName(canonical)
}

// Kinds returns every registered kind, sorted by Name.
func Kinds() []Kind {
	kinds := make([]Kind, 0, len(kindsByName))
	for _, k := range kindsByName {
		k.Aliases = slices.Clone(k.Aliases)
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b Kind) int { return strings.Compare(a.Name, b.Name) })
	return kinds
}

// kindByName finds a kind by its exact Name, the only spelling an object's
// kind field may use.
func kindByName(name string) (Kind, bool) {
	k, ok := kindsByName[name]
	if ok {
		k.Aliases = slices.Clone(k.Aliases)
	}
	return k, ok
}

// kindList renders the registered kinds' names for error messages.
func kindList() string {
	kinds := Kinds()
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.Name
	}
	return strings.Join(names, ", ")
}

// names returns every spelling of the kind that Lookup accepts, without
// repeats that differ only in case.
func (k Kind) names() []string {
	var names []string
	seen := make(map[string]bool)
	for _, n := range append([]string{k.Name, k.Plural}, k.Aliases...) {
		key := strings.ToLower(n)
		if n == "" || seen[key] {
			continue
		}
		seen[key] = true
		names = append(names, n)
	}
	return names
}
