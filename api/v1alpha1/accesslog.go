package v1alpha1

import (
	"path/filepath"
	"slices"
)

// AccessLog configures the access logs every proxy writes. Without one,
// proxies log the requests and connections that policy refused (mode
// denials, JSON, stdout): an audit trail of authorisation, authentication
// and rate-limit decisions.
type AccessLog struct {
	// Mode is denials (the default: requests refused with 401, 403 or 429
	// and TCP connections closed by policy), all, or off.
	Mode AccessLogMode `json:"mode,omitempty"`
	// Format is json (the default: one object a line) or text.
	Format AccessLogFormat `json:"format,omitempty"`
	// Path is stdout (the default) or an absolute file path on the proxy's host.
	Path string `json:"path,omitempty"`
}

// AccessLogMode says which requests are logged.
type AccessLogMode string

// Access log modes.
const (
	AccessLogDenials AccessLogMode = "denials"
	AccessLogAll     AccessLogMode = "all"
	AccessLogOff     AccessLogMode = "off"
)

// AccessLogFormat is how a line is written.
type AccessLogFormat string

// Access log formats.
const (
	AccessLogJSON AccessLogFormat = "json"
	AccessLogText AccessLogFormat = "text"
)

// AccessLogStdout is the Path that writes to the proxy's standard output.
const AccessLogStdout = "stdout"

var (
	accessLogModes   = []AccessLogMode{AccessLogDenials, AccessLogAll, AccessLogOff}
	accessLogFormats = []AccessLogFormat{AccessLogJSON, AccessLogText}
)

// DefaultAccessLog is what proxies do when the Mesh sets no accessLog.
func DefaultAccessLog() AccessLog {
	a := AccessLog{}
	a.Default()
	return a
}

// Default fills the mode, format and path left empty.
func (a *AccessLog) Default() {
	if a.Mode == "" {
		a.Mode = AccessLogDenials
	}
	if a.Format == "" {
		a.Format = AccessLogJSON
	}
	if a.Path == "" {
		a.Path = AccessLogStdout
	}
}

// Validate checks a defaulted AccessLog.
func (a *AccessLog) Validate(path *Path) ErrorList {
	var errs ErrorList
	if !slices.Contains(accessLogModes, a.Mode) {
		errs = append(errs, NotSupported(path.Child("mode"), a.Mode, accessLogModes))
	}
	if !slices.Contains(accessLogFormats, a.Format) {
		errs = append(errs, NotSupported(path.Child("format"), a.Format, accessLogFormats))
	}
	if a.Path != AccessLogStdout && (!filepath.IsAbs(a.Path) || filepath.Clean(a.Path) != a.Path) {
		errs = append(errs, Invalid(path.Child("path"), "must be stdout or a clean absolute file path, got %s", quote(a.Path)))
	}
	return errs
}
