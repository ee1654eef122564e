package decode

import (
	"fmt"
	"strings"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// Error is every problem found in an input. Its fields carry JSON tags so
// that an API server can return it as is.
type Error struct {
	// Source names the input, such as a file name.
	Source string `json:"source,omitempty"`
	// Documents holds the problems of each bad document, in input order.
	Documents []DocError `json:"documents,omitempty"`
	// Errs holds problems with the input as a whole: its size, its syntax,
	// its number of documents. Their Field is empty.
	Errs v1alpha1.ErrorList `json:"errors,omitempty"`
}

// DocError is the problems of one document.
type DocError struct {
	// Index is the 1-based position of the document among the non-empty
	// documents of the input, and so among the objects a clean input gives.
	Index int `json:"index"`
	// Line is the 1-based line on which the document starts.
	Line int `json:"line,omitempty"`
	// Ref names the resource, such as "Service default/payments", when its
	// kind and name could be read.
	Ref  string             `json:"ref,omitempty"`
	Errs v1alpha1.ErrorList `json:"errors"`
}

// Error renders one line per problem, such as
//
//	app.yaml: document 2 (Service default/payments): spec.ports[0].port: must be between 1 and 65535 (line 9)
func (e *Error) Error() string {
	prefix := ""
	if e.Source != "" {
		prefix = e.Source + ": "
	}
	var lines []string
	for _, doc := range e.Documents {
		where := fmt.Sprintf("%sdocument %d", prefix, doc.Index)
		if doc.Ref != "" {
			where += " (" + doc.Ref + ")"
		}
		for _, fe := range doc.Errs {
			lines = append(lines, where+": "+fe.Error())
		}
	}
	for _, fe := range e.Errs {
		lines = append(lines, prefix+fe.Error())
	}
	return strings.Join(lines, "\n")
}

// problems counts the problems e holds.
func (e *Error) problems() int {
	n := len(e.Errs)
	for _, doc := range e.Documents {
		n += len(doc.Errs)
	}
	return n
}
