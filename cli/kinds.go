package cli

import (
	"sort"
	"strings"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// defaultNamespace is the namespace commands use when -n is not given.
const defaultNamespace = v1alpha1.DefaultNamespace

// workloadsKind is the read-only kind `weft get` offers beside the
// resources: the workloads registered with the control plane.
var workloadsKind = v1alpha1.Kind{Name: "Workload", Plural: "workloads", Aliases: []string{"wl"}, Namespaced: true}

// resolveKind finds a resource kind by name, plural or alias, in any case.
func resolveKind(name string) (v1alpha1.Kind, bool) { return v1alpha1.Lookup(name) }

func isWorkloads(name string) bool { return kindMatches(workloadsKind, name) }

func kindMatches(k v1alpha1.Kind, name string) bool {
	if strings.EqualFold(k.Name, name) || strings.EqualFold(k.Plural, name) {
		return true
	}
	for _, a := range k.Aliases {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}

// kindNames lists the plurals users type, sorted, optionally with workloads.
func kindNames(withWorkloads bool) []string {
	var names []string
	for _, k := range v1alpha1.Kinds() {
		names = append(names, strings.ToLower(k.Plural))
	}
	if withWorkloads {
		names = append(names, workloadsKind.Plural)
	}
	sort.Strings(names)
	return names
}

func unknownKind(name string, withWorkloads bool) error {
	return usagef("unknown kind %q; known kinds: %s", name, strings.Join(kindNames(withWorkloads), ", "))
}

// RequestAuth's columns: who issues its tokens and where they are required.
func init() {
	kindColumns[v1alpha1.RequestAuthKind.Name] = struct {
		headers []string
		row     func(*v1alpha1.Object) []string
	}{
		headers: []string{"ISSUERS", "REQUIRED-ON"},
		row: func(o *v1alpha1.Object) []string {
			s, ok := o.Spec.(*v1alpha1.RequestAuthSpec)
			if !ok {
				return []string{"", ""}
			}
			issuers := make([]string, len(s.Issuers))
			for i, is := range s.Issuers {
				issuers[i] = is.Issuer
			}
			var required []string
			for _, r := range s.Rules {
				if !r.Require {
					continue
				}
				if len(r.Paths) == 0 && len(r.RouteRules) == 0 {
					required = append(required, "*")
				}
				required = append(required, r.Paths...)
				for _, name := range r.RouteRules {
					required = append(required, "rule:"+name)
				}
			}
			return []string{orDash(strings.Join(issuers, ",")), orDash(strings.Join(required, ","))}
		},
	}
}
