package token

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Role is what an API credential may do, named as Kubernetes names its
// default cluster roles. A Role is a ceiling: Namespaces narrows it further.
type Role string

const (
	// RoleAdmin may do everything, in every namespace: resources of every
	// scope, join tokens, API credentials and the audit log.
	RoleAdmin Role = "admin"
	// RoleEdit may read, apply and delete namespaced resources and create,
	// list and revoke join tokens, in its namespaces (all when it names none).
	// Cluster-scoped resources such as Mesh are read-only to it.
	RoleEdit Role = "edit"
	// RoleView may only read, in its namespaces (all when it names none).
	RoleView Role = "view"
)

// Roles lists every role, most powerful first.
func Roles() []Role { return []Role{RoleAdmin, RoleEdit, RoleView} }

// ParseRole reads a role as the CLI and the API spell it.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if string(r) == s {
			return r, nil
		}
	}
	names := make([]string, 0, len(Roles()))
	for _, r := range Roles() {
		names = append(names, string(r))
	}
	return "", fmt.Errorf("role %q is not one of %s", s, strings.Join(names, ", "))
}

// Credential describes an API credential, without its secret.
type Credential struct {
	ID   string
	Name string // who or what holds it, for people reading audit logs
	Role Role
	// Namespaces limits the credential to these namespaces; empty means all.
	Namespaces []string
	CreatedAt  time.Time
	// ExpiresAt is zero for a credential that does not expire.
	ExpiresAt time.Time
}

// InNamespace reports whether the credential's scope covers namespace.
func (c Credential) InNamespace(namespace string) bool {
	return len(c.Namespaces) == 0 || slices.Contains(c.Namespaces, namespace)
}

// Scope describes the credential's reach for messages: "admin",
// "edit in shop, web", "view in every namespace".
func (c Credential) Scope() string {
	if len(c.Namespaces) == 0 {
		if c.Role == RoleAdmin {
			return string(c.Role)
		}
		return string(c.Role) + " in every namespace"
	}
	return string(c.Role) + " in " + strings.Join(c.Namespaces, ", ")
}

// CredentialSpec is what CreateCredential makes.
type CredentialSpec struct {
	// Name says who or what holds the credential: 1 to 63 letters, digits,
	// '.', '_', '@' or '-'.
	Name string
	// Role is required.
	Role Role
	// Namespaces limits an edit or view credential; empty means every
	// namespace. An admin credential is never limited.
	Namespaces []string
	// TTL is the credential's lifetime; zero means it does not expire.
	TTL time.Duration
}

// maxCredentialNamespaces bounds the namespaces one credential lists.
const maxCredentialNamespaces = 64

// Validate says what is wrong with a spec, naming the field.
func (s CredentialSpec) Validate() error {
	if !validAdminName(s.Name) {
		return fmt.Errorf("credential name %q: want 1 to %d letters, digits, '.', '_', '@' or '-'", s.Name, maxAdminName)
	}
	if _, err := ParseRole(string(s.Role)); err != nil {
		return fmt.Errorf("credential %q: %w", s.Name, err)
	}
	if s.Role == RoleAdmin && len(s.Namespaces) > 0 {
		return fmt.Errorf("credential %q: an admin credential cannot be limited to namespaces; use role edit or view", s.Name)
	}
	if len(s.Namespaces) > maxCredentialNamespaces {
		return fmt.Errorf("credential %q: %d namespaces, at most %d", s.Name, len(s.Namespaces), maxCredentialNamespaces)
	}
	for _, ns := range s.Namespaces {
		if !validLabel(ns) {
			return fmt.Errorf("credential %q: namespace %q is not a DNS label (lowercase letters, digits and '-', at most 63)", s.Name, ns)
		}
	}
	if s.TTL < 0 || (s.TTL > 0 && s.TTL < MinTTL) || s.TTL > MaxTTL {
		return fmt.Errorf("credential %q: lifetime %s is outside [%s, %s] (zero: no expiry)", s.Name, s.TTL, MinTTL, MaxTTL)
	}
	return nil
}

// normalNamespaces sorts and deduplicates, so that a record says one thing one way.
func normalNamespaces(ns []string) []string {
	if len(ns) == 0 {
		return nil
	}
	out := slices.Clone(ns)
	slices.Sort(out)
	return slices.Compact(out)
}
