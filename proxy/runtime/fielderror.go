package runtime

import (
	"fmt"

	"github.com/weftmesh/weft/proxy/xdswire"
)

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// pathErr is a validation failure at a field path within one resource.
func pathErr(path, format string, args ...any) error {
	return &xdswire.FieldError{Path: path, Err: fmt.Errorf(format, args...)}
}

// wrapPath puts a path before an error from a nested compile step.
func wrapPath(path string, err error) error {
	if fe, ok := err.(*xdswire.FieldError); ok {
		return &xdswire.FieldError{Path: join(path, fe.Path), Err: fe.Err}
	}
	return &xdswire.FieldError{Path: path, Err: err}
}
