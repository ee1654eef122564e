// Package decode turns YAML or JSON input into v1alpha1 objects, strictly:
// an unknown or misspelt field, a value of the wrong type, a duplicate key
// or an integer too big for its field is an error, not something to ignore
// or guess at. Every problem is reported with its field path and line, and
// the problems of all documents are reported together:
//
//	app.yaml: document 2 (Service default/payments): spec.ports[0].protocl: unknown field; did you mean "protocol"? (line 12)
//	app.yaml: document 3 (Service default/orders): spec.ports[0].port: must be between 1 and 65535 (line 21)
//
// An input is a stream of YAML documents separated by "---"; JSON is YAML,
// so a JSON object is one document. Each document is one object:
//
//	apiVersion: weft.dev/v1alpha1
//	kind: Service
//	metadata:
//	  name: payments
//	spec:
//	  ports:
//	  - port: 8080
//	    protocol: grpc
//
// Decoding walks the parsed YAML nodes against the Go types, matching
// fields by their json tags and decoding spec into the spec type of the
// object's kind, so no line is lost on the way. Each object is then
// defaulted and validated, and a validation error is given the line of its
// field, or of the field's nearest ancestor when the field is absent.
//
// Anchors, aliases and merge keys are rejected, since they would let a small
// input expand into a large one; so are tags outside YAML's core schema and
// control characters in strings, which a resource has no use for. An input
// may be at most MaxInputSize bytes and MaxDocuments documents.
package decode
