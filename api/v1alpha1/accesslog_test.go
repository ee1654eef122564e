package v1alpha1

import "testing"

func TestAccessLogValidate(t *testing.T) {
	tests := []struct {
		name string
		log  AccessLog
		want []string
	}{
		{name: "defaults"},
		{name: "all as text to a file", log: AccessLog{Mode: "all", Format: "text", Path: "/var/log/weft/access.log"}},
		{name: "off", log: AccessLog{Mode: "off"}},
		{name: "mode", log: AccessLog{Mode: "errors"},
			want: []string{`spec.accessLog.mode: unsupported value "errors": must be one of denials, all, off`}},
		{name: "format", log: AccessLog{Format: "yaml"},
			want: []string{`spec.accessLog.format: unsupported value "yaml": must be one of json, text`}},
		{name: "relative path", log: AccessLog{Path: "access.log"},
			want: []string{`spec.accessLog.path: must be stdout or a clean absolute file path, got "access.log"`}},
		{name: "unclean path", log: AccessLog{Path: "/var/log/../x"},
			want: []string{`spec.accessLog.path: must be stdout or a clean absolute file path, got "/var/log/../x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := MeshSpec{AccessLog: &tt.log}
			spec.Default()
			assertErrors(t, spec.Validate(NewPath("spec")), tt.want)
		})
	}
	if d := DefaultAccessLog(); d != (AccessLog{Mode: AccessLogDenials, Format: AccessLogJSON, Path: AccessLogStdout}) {
		t.Errorf("DefaultAccessLog() = %+v", d)
	}
}
