package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/decode"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/audit"
	"github.com/weftmesh/weft/controlplane/store"
)

// maxSourceLen bounds the file name echoed in messages.
const maxSourceLen = 256

// apply decodes, validates and cross-checks every document of the body,
// then stores them all in one transaction; any problem rejects them all.
func (s *server) apply(w http.ResponseWriter, r *http.Request) {
	source := r.URL.Query().Get("source")
	switch {
	case source == "":
		source = "request body"
	case len(source) > maxSourceLen:
		source = source[:maxSourceLen] + "..."
	}
	if r.ContentLength > MaxApplyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, tooLarge(source))
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxApplyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, tooLarge(source))
			return
		}
		writeError(w, http.StatusBadRequest, "read request body: "+err.Error())
		return
	}
	objs, err := decode.Documents(data, source)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, rejection(source, err))
		return
	}
	if len(objs) == 0 {
		writeError(w, http.StatusBadRequest, source+": no resources found")
		return
	}
	if len(objs) > store.MaxApplyObjects {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"%s: %d resources, but one apply stores at most %d (one transaction); split the file",
			source, len(objs), store.MaxApplyObjects))
		return
	}
	for _, o := range objs {
		if !s.allow(w, r, verbWrite, objectScope(o), "apply "+objectRef(o)+" ("+source+"); nothing applied") {
			return
		}
	}
	// Checks in order, each refusing the whole apply: the objects against
	// each other, then stored Gateway keys put back where a redacted
	// marker stands, then references to what is stored.
	if refused(w, source, s.crossCheck(objs), nil) {
		return
	}
	for _, check := range []func(context.Context, []*v1alpha1.Object) ([]client.ErrorDetail, error){
		s.restoreSecrets, s.checkReferences,
	} {
		if details, err := check(r.Context(), objs); refused(w, source, details, err) {
			return
		}
	}
	entry := auditEntry(r, client.AuditApply)
	results, err := s.Store.ApplyRecorded(r.Context(), objs, auditHook(s, entry, appliedItems))
	if err != nil {
		writeError(w, statusOf(err), source+": nothing applied: "+err.Error())
		return
	}
	if slices.ContainsFunc(results, func(res store.ApplyResult) bool { return res.Action != store.ActionUnchanged }) {
		s.audited(r.Context(), entry)
	}
	resp := client.ApplyResponse{Results: make([]client.ApplyResult, 0, len(results))}
	for _, res := range results {
		resp.Results = append(resp.Results, client.ApplyResult{
			Kind:      fmt.Sprint(res.Kind),
			Namespace: res.Namespace,
			Name:      res.Name,
			Action:    fmt.Sprint(res.Action),
		})
	}
	writeJSON(w, http.StatusOK, resp)
}

func tooLarge(source string) string {
	return fmt.Sprintf("%s: request body exceeds %d MiB; split it into several files", source, MaxApplyBytes>>20)
}

// crossCheck finds problems no single document shows: a Mesh naming another
// trust domain, and the same resource twice in one apply.
func (s *server) crossCheck(objs []*v1alpha1.Object) []client.ErrorDetail {
	var details []client.ErrorDetail
	seen := make(map[string]int, len(objs))
	for i, o := range objs {
		ref := objectRef(o)
		if first, dup := seen[ref]; dup {
			details = append(details, client.ErrorDetail{
				Document: i + 1, Ref: ref, Field: "metadata.name",
				Detail: fmt.Sprintf("duplicate of document %d: a resource may appear once per apply", first),
			})
			continue
		}
		seen[ref] = i + 1
		if mesh, ok := o.Spec.(*v1alpha1.MeshSpec); ok && mesh.TrustDomain != "" && mesh.TrustDomain != s.TrustDomain {
			details = append(details, client.ErrorDetail{
				Document: i + 1, Ref: ref, Field: "spec.trustDomain",
				Detail: fmt.Sprintf("must be %q (the control plane's trust domain, fixed at its first start), not %q",
					s.TrustDomain, mesh.TrustDomain),
			})
		}
	}
	return details
}

// checkReferences checks what the objects refer to, among themselves, the
// stored objects and the registered workloads: the services and subsets a
// Route names, and what a tcp service's Route or DestinationPolicy asks. It
// returns an error only when the store could not be read.
func (s *server) checkReferences(ctx context.Context, objs []*v1alpha1.Object) ([]client.ErrorDetail, error) {
	if !slices.ContainsFunc(objs, func(o *v1alpha1.Object) bool {
		switch o.Spec.(type) {
		case *v1alpha1.RouteSpec, *v1alpha1.DestinationPolicySpec, *v1alpha1.AccessPolicySpec:
			return true
		}
		return false
	}) {
		return nil, nil
	}
	var lookupErr error
	known := func(kind, namespace, name string) (*v1alpha1.Object, bool) {
		if lookupErr != nil {
			return nil, false
		}
		o, err := s.Store.Get(ctx, kind, namespace, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, false
		case err != nil:
			lookupErr = err
			return nil, false
		}
		return o, true
	}
	workloads := func(namespace, service string) bool {
		if lookupErr != nil || s.Workloads == nil {
			return false
		}
		ws, err := s.Workloads.ListWorkloads(ctx, namespace, service)
		if err != nil {
			lookupErr = err
			return false
		}
		return len(ws) > 0
	}
	errs := v1alpha1.CheckReferences(objs, known, workloads)
	if lookupErr != nil {
		return nil, fmt.Errorf("check references: %w", lookupErr)
	}
	var details []client.ErrorDetail
	for _, fe := range errs {
		ref, field, ok := strings.Cut(fe.Field, ": ")
		if !ok {
			ref, field = "", fe.Field
		}
		d := client.ErrorDetail{Ref: ref, Field: field, Detail: fe.Detail}
		for i, o := range objs {
			if o.Ref() == ref {
				d.Document = i + 1
				break
			}
		}
		details = append(details, d)
	}
	return details, nil
}

// objectRef names a resource as error messages show it: "Service default/payments".
func objectRef(o *v1alpha1.Object) string {
	if o.Metadata.Namespace == "" {
		return o.Kind + " " + o.Metadata.Name
	}
	return o.Kind + " " + o.Metadata.Namespace + "/" + o.Metadata.Name
}

// refused answers an apply that a check refused, with its error (500 or
// what statusOf says) or its problems (400), and reports whether it did.
func refused(w http.ResponseWriter, source string, details []client.ErrorDetail, err error) bool {
	switch {
	case err != nil:
		writeError(w, statusOf(err), source+": nothing applied: "+err.Error())
	case len(details) > 0:
		writeJSON(w, http.StatusBadRequest, client.ErrorResponse{
			Error:   rejectedMessage(source, len(details)),
			Details: details,
		})
	default:
		return false
	}
	return true
}

func rejectedMessage(source string, problems int) string {
	if problems == 1 {
		return source + ": 1 problem; nothing applied"
	}
	return fmt.Sprintf("%s: %d problems; nothing applied", source, problems)
}

// rejection turns a decode error into the API's error body, keeping every
// field error with its document and line when the error carries them.
func rejection(source string, err error) client.ErrorResponse {
	details := decodeDetails(err)
	if len(details) == 0 {
		return client.ErrorResponse{Error: source + ": nothing applied: " + err.Error()}
	}
	return client.ErrorResponse{Error: rejectedMessage(source, len(details)), Details: details}
}

// decodeDetails flattens a *decode.Error into one detail per problem.
func decodeDetails(err error) []client.ErrorDetail {
	var derr *decode.Error
	if !errors.As(err, &derr) {
		return nil
	}
	var details []client.ErrorDetail
	for _, doc := range derr.Documents {
		for _, fe := range doc.Errs {
			line := fe.Line
			if line == 0 {
				line = doc.Line // where the document starts is better than nothing
			}
			details = append(details, client.ErrorDetail{
				Document: doc.Index, Ref: doc.Ref, Field: fe.Field, Line: line, Detail: fe.Detail,
			})
		}
	}
	for _, fe := range derr.Errs {
		details = append(details, client.ErrorDetail{Field: fe.Field, Line: fe.Line, Detail: fe.Detail})
	}
	return details
}

// appliedItems are the audit items of an apply: one per object it created
// or configured, with the diff of its YAML.
func appliedItems(changes []store.Change) ([]client.AuditItem, error) {
	items := make([]client.AuditItem, 0, len(changes))
	for _, c := range changes {
		diff, err := audit.Diff(resultRef(c.ApplyResult), redactStored(c.Before), redactStored(c.After))
		if err != nil {
			return nil, err
		}
		items = append(items, client.AuditItem{Kind: c.Kind, Namespace: c.Namespace, Name: c.Name, Result: c.Action, Diff: diff})
	}
	return items, nil
}

// resultRef names a stored object as objectRef does.
func resultRef(res store.ApplyResult) string {
	if res.Namespace == "" {
		return res.Kind + " " + res.Name
	}
	return res.Kind + " " + res.Namespace + "/" + res.Name
}
