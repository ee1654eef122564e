package runtime

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
)

const anyFullName = "google.protobuf.Any"

// checkFields walks every populated field of m, recursing into messages and
// into Any values of supported types, and fails at the first field or type
// the proxy does not honour. The error names the field path from m.
func checkFields(m proto.Message) error {
	return walk(m.ProtoReflect(), "")
}

func walk(m protoreflect.Message, path string) error {
	d := m.Descriptor()
	if leaves[d.FullName()] {
		return nil
	}
	fields, ok := supported[d.FullName()]
	if !ok {
		return pathErr(path, "%s is not supported", d.FullName())
	}
	if len(m.GetUnknown()) > 0 {
		return pathErr(path, "holds fields unknown to this proxy")
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		fpath := join(path, string(fd.Name()))
		if !fields[fd.Name()] {
			err = pathErr(fpath, "field is not supported by this proxy")
			return false
		}
		err = walkValue(m, fd, v, fpath)
		return err == nil
	})
	return err
}

func walkValue(parent protoreflect.Message, fd protoreflect.FieldDescriptor, v protoreflect.Value, path string) error {
	switch {
	case fd.IsList():
		if fd.Message() == nil {
			return nil
		}
		l := v.List()
		for i := 0; i < l.Len(); i++ {
			if err := walkMessage(parent, l.Get(i).Message(), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	case fd.IsMap():
		if fd.MapValue().Message() == nil {
			return nil
		}
		var err error
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			err = walkMessage(parent, mv.Message(), path+"["+strconv.Quote(k.String())+"]")
			return err == nil
		})
		return err
	case fd.Message() != nil:
		return walkMessage(parent, v.Message(), path)
	}
	return nil
}

// walkMessage checks a message value, unpacking an Any into its type.
func walkMessage(parent, m protoreflect.Message, path string) error {
	if m.Descriptor().FullName() != anyFullName {
		return walk(m, path)
	}
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		return pathErr(path, "malformed Any")
	}
	name := a.MessageName()
	if _, err := protoregistry.GlobalTypes.FindMessageByName(name); err != nil || supported[name] == nil {
		// Envoy's extension points name their extension beside its
		// config: say which extension is not supported.
		if ext := extensionName(parent); ext != "" {
			return pathErr(strings.TrimSuffix(path, ".typed_config"), "%s is not supported", ext)
		}
		return pathErr(path, "%s is not supported", typeName(a))
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		return pathErr(path, "decode %s: %v", name, err)
	}
	return walk(inner.ProtoReflect(), path+"("+string(name)+")")
}

// extensionName returns the "name" of a filter or transport socket.
func extensionName(parent protoreflect.Message) string {
	fd := parent.Descriptor().Fields().ByName("name")
	if fd == nil || fd.Kind() != protoreflect.StringKind {
		return ""
	}
	return parent.Get(fd).String()
}

func typeName(a *anypb.Any) string {
	if n := a.MessageName(); n != "" {
		return string(n)
	}
	return strconv.Quote(a.GetTypeUrl())
}

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
	if fe, ok := err.(*fieldError); ok {
		return &fieldError{path: join(path, fe.path), err: fe.err}
	}
	return &fieldError{path: path, err: err}
}
