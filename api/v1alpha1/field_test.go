package v1alpha1

import (
	"strings"
	"testing"
)

func TestPathString(t *testing.T) {
	tests := []struct {
		path *Path
		want string
	}{
		{path: nil, want: ""},
		{path: NewPath("spec"), want: "spec"},
		{path: NewPath("spec").Child("ports").Index(1).Child("protocol"), want: "spec.ports[1].protocol"},
		{path: NewPath("metadata").Child("labels").Key("app.kubernetes.io/name"), want: `metadata.labels["app.kubernetes.io/name"]`},
	}
	for _, tt := range tests {
		if got := tt.path.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestFieldError(t *testing.T) {
	tests := []struct {
		name string
		err  *FieldError
		want string
	}{
		{name: "field and line", err: &FieldError{Field: "spec.ports", Line: 3, Detail: "is required"}, want: "spec.ports: is required (line 3)"},
		{name: "no line", err: Required(NewPath("metadata").Child("name")), want: "metadata.name: is required"},
		{name: "whole document", err: &FieldError{Line: 7, Detail: "syntax error: x"}, want: "syntax error: x (line 7)"},
		{
			name: "not supported",
			err:  NotSupported(NewPath("spec").Child("mtls").Child("mode"), MTLSMode("OFF"), []MTLSMode{MTLSStrict, "PERMISSIVE"}),
			want: `spec.mtls.mode: unsupported value "OFF": must be one of STRICT, PERMISSIVE`,
		},
		{
			name: "long value cut short",
			err:  NotSupported(NewPath("p"), Protocol(strings.Repeat("é", 40)), protocols),
			want: `p: unsupported value "` + strings.Repeat("é", 32) + `"...: must be one of http, http2, grpc, tcp`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorList(t *testing.T) {
	if err := ErrorList(nil).Err(); err != nil {
		t.Errorf("empty ErrorList: Err() = %v, want nil", err)
	}
	l := ErrorList{Required(NewPath("a")), Invalid(NewPath("b"), "bad %d", 1)}
	if got, want := l.Err().Error(), "a: is required\nb: bad 1"; got != want {
		t.Errorf("Err().Error() = %q, want %q", got, want)
	}
}
