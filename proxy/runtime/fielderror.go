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

// fieldError is a validation failure at a field path within one resource.
type fieldError struct {
	path string
	err  error
}

func (e *fieldError) Error() string {
	if e.path == "" {
		return e.err.Error()
	}
	return e.path + ": " + e.err.Error()
}

func (e *fieldError) Unwrap() error { return e.err }

func pathErr(path, format string, args ...any) error {
	return &fieldError{path: path, err: fmt.Errorf(format, args...)}
}

// wrapPath puts a path before an error from a nested compile step.
func wrapPath(path string, err error) error {
	switch fe := err.(type) {
	case *fieldError:
		return &fieldError{path: join(path, fe.path), err: fe.err}
	case *xdswire.FieldError:
		return &fieldError{path: join(path, fe.Path), err: fe.Err}
	}
	return &fieldError{path: path, err: err}
}
