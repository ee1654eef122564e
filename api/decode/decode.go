package decode

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// Limits on one input. They keep a hostile or mistaken input from costing the
// API server much memory or time; a bigger configuration is applied in parts.
const (
	// MaxInputSize is the largest input accepted, in bytes.
	MaxInputSize = 1 << 20
	// MaxDocuments is the most documents, empty ones included, in one input.
	MaxDocuments = 500
	// maxProblems is the most problems reported for one input; past it the
	// rest of the input is not looked at.
	maxProblems = 100
)

// Documents strictly decodes every document of a YAML or JSON input, then
// defaults and validates each object. source names the input in errors, such
// as "app.yaml".
//
// Either every document is good and Documents returns their objects in order
// (empty documents are skipped), or it returns only an *Error listing the
// problems of all documents.
func Documents(data []byte, source string) ([]*v1alpha1.Object, error) {
	e := &Error{Source: source}
	if len(data) > MaxInputSize {
		e.Errs = append(e.Errs, &v1alpha1.FieldError{
			Detail: fmt.Sprintf("input is %d bytes, more than the limit of %d (1 MiB); split it into several files", len(data), MaxInputSize),
		})
		return nil, e
	}
	if fe := checkText(data); fe != nil {
		e.Errs = append(e.Errs, fe)
		return nil, e
	}

	var objs []*v1alpha1.Object
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for docs, index := 1, 0; ; docs++ {
		var doc yaml.Node
		fe, eof := next(dec, &doc)
		if eof {
			break
		}
		if fe != nil {
			e.Errs = append(e.Errs, fe)
			break
		}
		if docs > MaxDocuments {
			e.Errs = append(e.Errs, &v1alpha1.FieldError{
				Line:   doc.Line,
				Detail: fmt.Sprintf("more than %d documents; split the input into several files", MaxDocuments),
			})
			break
		}
		if len(doc.Content) == 0 || isNull(doc.Content[0]) {
			continue
		}
		index++
		budget := maxProblems - e.problems()
		obj, errs, truncated := decodeDocument(doc.Content[0], budget)
		switch {
		case len(errs) > 0:
			e.Documents = append(e.Documents, DocError{Index: index, Line: doc.Content[0].Line, Ref: refOf(obj), Errs: errs})
		case !truncated:
			objs = append(objs, obj)
		}
		if truncated {
			e.Errs = append(e.Errs, &v1alpha1.FieldError{
				Detail: fmt.Sprintf("too many problems: only the first %d are listed", maxProblems),
			})
			break
		}
	}
	if len(e.Documents) > 0 || len(e.Errs) > 0 {
		return nil, e
	}
	return objs, nil
}

// Document decodes an input that must hold exactly one object, as Documents
// does.
func Document(data []byte, source string) (*v1alpha1.Object, error) {
	objs, err := Documents(data, source)
	if err != nil {
		return nil, err
	}
	if len(objs) != 1 {
		return nil, &Error{Source: source, Errs: v1alpha1.ErrorList{{
			Detail: fmt.Sprintf("expected exactly one document, found %d", len(objs)),
		}}}
	}
	return objs[0], nil
}

// decodeDocument decodes, defaults and validates the object whose mapping is
// root, keeping at most limit problems and saying whether there were more.
func decodeDocument(root *yaml.Node, limit int) (*v1alpha1.Object, v1alpha1.ErrorList, bool) {
	d := &decoder{limit: limit, lines: make(map[string]int)}
	obj := d.object(root)
	obj.Default()
	for _, fe := range obj.Validate() {
		if slices.ContainsFunc(d.unread, func(p string) bool { return within(fe.Field, p) }) {
			continue
		}
		if fe.Line == 0 {
			fe.Line = d.lineOf(fe.Field)
		}
		d.add(fe)
	}
	slices.SortStableFunc(d.errs, func(a, b *v1alpha1.FieldError) int { return cmp.Compare(a.Line, b.Line) })
	return obj, d.errs, d.truncated
}

// within reports whether the field path is path itself or below it; every
// field is below the empty path of the whole document.
func within(field, path string) bool {
	if !strings.HasPrefix(field, path) {
		return false
	}
	rest := field[len(path):]
	return path == "" || rest == "" || rest[0] == '.' || rest[0] == '['
}

// refOf is obj.Ref, made safe to print: the kind and name may not have been
// validated yet.
func refOf(obj *v1alpha1.Object) string {
	const limit = 128
	ref := strings.Map(func(r rune) rune {
		if r < ' ' || r == utf8.RuneError || (r >= 0x7f && r < 0xa0) {
			return -1
		}
		return r
	}, obj.Ref())
	if len(ref) > limit {
		ref = truncate(ref, limit) + "..."
	}
	return ref
}

// next parses the next document into doc, reporting the end of the input
// or a syntax error. The YAML parser panics on some malformed inputs rather
// than failing (see mikefarah/yq#2481 for this version), so a panic is
// turned into a syntax error too: it must not take the API server down.
func next(dec *yaml.Decoder, doc *yaml.Node) (fe *v1alpha1.FieldError, eof bool) {
	defer func() {
		if r := recover(); r != nil {
			fe = &v1alpha1.FieldError{Detail: fmt.Sprintf("syntax error: the YAML parser failed: %v", r)}
		}
	}()
	err := dec.Decode(doc)
	if errors.Is(err, io.EOF) {
		return nil, true
	}
	if err != nil {
		return syntaxError(err), false
	}
	return nil, false
}

// yamlErrorLine matches the line the YAML parser puts in its messages.
var yamlErrorLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a YAML parser error into a problem with its line. The
// parser leaves the line out when the problem is on the first line.
func syntaxError(err error) *v1alpha1.FieldError {
	msg := err.Error()
	if m := yamlErrorLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &v1alpha1.FieldError{Line: line, Detail: "syntax error: " + m[2]}
	}
	return &v1alpha1.FieldError{Line: 1, Detail: "syntax error: " + strings.TrimPrefix(msg, "yaml: ")}
}

// checkText rejects what the YAML reader would reject without saying where:
// bytes that are not UTF-8 and control characters.
func checkText(data []byte) *v1alpha1.FieldError {
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return &v1alpha1.FieldError{Line: line, Detail: "input is not valid UTF-8"}
		case !printable(r):
			return &v1alpha1.FieldError{Line: line, Detail: fmt.Sprintf("control character %U is not allowed", r)}
		case r == '\n', r == 0x85, r == 0x2028, r == 0x2029:
			line++
		case r == '\r' && (i+1 == len(data) || data[i+1] != '\n'):
			line++
		}
		i += size
	}
	return nil
}

// printable reports whether the YAML reader accepts r in a stream.
func printable(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' ||
		(r >= 0x20 && r <= 0x7e) || r == 0x85 ||
		(r >= 0xa0 && r <= 0xd7ff) || (r >= 0xe000 && r <= 0xfffd) ||
		(r >= 0x10000 && r <= 0x10ffff)
}
