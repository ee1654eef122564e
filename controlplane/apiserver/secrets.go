package apiserver

// Secrets in resources. A Gateway carries its TLS private keys inline; they
// go to the gateway proxies as xDS secrets and never come back out of the
// API: every read (GET /api/v1/resources, the audit log's diffs) shows a
// marker in their place, `<redacted: 1 private key, sha256:…>`, the same for
// every role. An apply whose key is still the marker keeps the stored key
// the marker names, so `weft get gateway web -o yaml > web.yaml`, an edit,
// and `weft apply -f web.yaml` change what was edited and nothing else; a
// marker naming a key the Gateway no longer holds is refused at its field.
//
// A RequestAuth's inline JWKS is public by design, but nothing stops a
// pasted set from carrying private members (an RSA or EC "d", an "oct"
// "k"): reads strip them, leaving the public set, which is all the proxies
// use, so re-applying what was read is safe too.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store"
)

// redactObject removes the secrets of o in place, for a reader.
func redactObject(o *v1alpha1.Object) {
	switch spec := o.Spec.(type) {
	case *v1alpha1.GatewaySpec:
		spec.RedactKeys()
	case *v1alpha1.RequestAuthSpec:
		for i := range spec.Issuers {
			spec.Issuers[i].JWKS = publicJWKS(spec.Issuers[i].JWKS)
		}
	}
}

// jwkPrivateMembers are the JSON Web Key members that hold private or
// symmetric key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
var jwkPrivateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// publicJWKS returns the key set without private members; a set that has
// none (or that is not JSON) is returned unchanged, byte for byte.
func publicJWKS(s string) string {
	if s == "" {
		return s
	}
	var set map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &set); err != nil {
		return s
	}
	var keys []map[string]json.RawMessage
	if err := json.Unmarshal(set["keys"], &keys); err != nil {
		return s
	}
	changed := false
	for _, k := range keys {
		for _, m := range jwkPrivateMembers {
			if _, ok := k[m]; ok {
				delete(k, m)
				changed = true
			}
		}
	}
	if !changed {
		return s
	}
	b, err := json.Marshal(keys)
	if err != nil {
		return s
	}
	set["keys"] = b
	out, err := json.Marshal(set)
	if err != nil {
		return s
	}
	return string(out)
}

// restoreSecrets puts back, in every Gateway of objs whose private keys
// are markers, the stored keys they name. Problems are reported at their
// field, like any validation error; a Gateway restored is validated again,
// with its real keys.
func (s *server) restoreSecrets(ctx context.Context, objs []*v1alpha1.Object) ([]client.ErrorDetail, error) {
	var details []client.ErrorDetail
	for i, o := range objs {
		spec, ok := o.Spec.(*v1alpha1.GatewaySpec)
		if !ok || !spec.HasRedactedKeys() {
			continue
		}
		var stored *v1alpha1.GatewaySpec
		cur, err := s.Store.Get(ctx, v1alpha1.GatewayKind.Name, o.Metadata.Namespace, o.Metadata.Name)
		switch {
		case err == nil:
			stored, _ = cur.Spec.(*v1alpha1.GatewaySpec)
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("read %s to keep its private keys: %w", objectRef(o), err)
		}
		errs := spec.RestoreKeys(v1alpha1.NewPath("spec"), objectRef(o), stored)
		if len(errs) == 0 {
			errs = o.Validate()
		}
		for _, fe := range errs {
			details = append(details, client.ErrorDetail{Document: i + 1, Ref: objectRef(o), Field: fe.Field, Detail: fe.Detail})
		}
	}
	return details, nil
}

// redactStored redacts a stored object's encoding (an audit diff's before
// or after). Bytes that do not decode are redacted as text.
func redactStored(data []byte) []byte {
	if len(data) == 0 {
		return data
	}
	var o v1alpha1.Object
	if err := json.Unmarshal(data, &o); err != nil {
		return redactPEMText(data)
	}
	switch o.Spec.(type) {
	case *v1alpha1.GatewaySpec, *v1alpha1.RequestAuthSpec:
	default:
		return data
	}
	redactObject(&o)
	b, err := json.Marshal(o)
	if err != nil {
		return redactPEMText(data)
	}
	return b
}

// pemKeyRE matches a PEM private key block anywhere in text, across the
// prefixes of diff or YAML lines and across escaped newlines.
var pemKeyRE = regexp.MustCompile(`(?s)-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----`)

// redactPEMText replaces every PEM private key block in text with a marker.
func redactPEMText(text []byte) []byte {
	if !bytes.Contains(text, []byte("PRIVATE KEY-----")) {
		return text
	}
	return pemKeyRE.ReplaceAll(text, []byte("<redacted: $1>"))
}

// redactAuditEntries redacts what earlier entries may hold: the diffs of
// Gateways applied before keys were redacted in the log.
func redactAuditEntries(entries []client.AuditEntry) {
	for i := range entries {
		for j := range entries[i].Changes {
			it := &entries[i].Changes[j]
			it.Diff = string(redactPEMText([]byte(it.Diff)))
		}
	}
}
