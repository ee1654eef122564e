// Package client is the HTTPS client of the control plane's API server, used
// by the weft CLI, together with the client config file that `weft control`
// writes for it.
package client

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// EnvConfig names the environment variable that overrides the default
// client config path.
const EnvConfig = "WEFT_CONFIG"

// defaultConfigPath is the config's place below the user's home directory.
var defaultConfigPath = filepath.Join(".weft", "control", "config")

// Config is the client config file: where the control plane is and how to
// trust and authenticate to it. `weft control` writes it on first start.
type Config struct {
	// Server is the https:// URL of the control plane's API (port 15011 by default).
	Server string `json:"server"`
	// GRPCServer is the host:port of the control plane's gRPC port (ADS,
	// Identity, Registry), for commands that start proxies.
	GRPCServer string `json:"grpcServer,omitempty"`
	// CACert is the PEM certificate of the CA that signs the API's serving
	// certificate; it is the only root the client trusts.
	CACert string `json:"caCert"`
	// Token is the API credential sent as a bearer token; its role (admin,
	// edit or view) says what the client may do. The control plane writes
	// an admin credential here on its first start.
	Token string `json:"token"`
}

// Validate reports the first field that makes the config unusable.
func (c Config) Validate() error {
	if c.Server == "" {
		return errors.New("server: required (the https:// URL of the control plane API)")
	}
	u, err := url.Parse(c.Server)
	if err != nil {
		return fmt.Errorf("server: %q is not a URL: %w", c.Server, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("server: %q must be an https:// URL with a host", c.Server)
	}
	if strings.TrimSpace(c.CACert) == "" {
		return errors.New("caCert: required (the PEM certificate of the API's CA)")
	}
	if c.Token == "" {
		return errors.New("token: required (the admin credential)")
	}
	return nil
}

// ResolveConfigPath picks the config file: the --config flag if set, then
// $WEFT_CONFIG, then ~/.weft/control/config.
func ResolveConfigPath(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv(EnvConfig); env != "" {
		return env
	}
	home, err := os.UserHomeDir()
	if err != nil {
		// Without a home directory, a relative path is the least surprising fallback.
		return defaultConfigPath
	}
	return filepath.Join(home, defaultConfigPath)
}

// LoadConfig reads and validates the config file at path. A missing file
// gives an error that says how to create one; it wraps fs.ErrNotExist.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, &missingConfigError{path: path}
	}
	if err != nil {
		return Config{}, fmt.Errorf("read client config: %w", err)
	}
	var cfg Config
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return Config{}, fmt.Errorf("client config %s: %w", displayPath(path), err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("client config %s: %w", displayPath(path), err)
	}
	return cfg, nil
}

// missingConfigError says where the config was looked for and how to get one.
type missingConfigError struct{ path string }

func (e *missingConfigError) Error() string {
	return fmt.Sprintf("no client config at %s: start 'weft control' first or pass --config", displayPath(e.path))
}

func (e *missingConfigError) Unwrap() error { return fs.ErrNotExist }

// WriteConfig writes cfg to path with mode 0600, creating the directory
// (mode 0700) if needed. It writes a temporary file beside path and renames
// it, so a reader never sees a half-written config.
func WriteConfig(path string, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	// CreateTemp already uses 0600; Chmod makes the mode independent of that detail.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write client config: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write client config %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write client config %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write client config %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	return nil
}

// displayPath shortens a path below the home directory to ~/..., as users write it.
func displayPath(path string) string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return path
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if rel, err := filepath.Rel(home, abs); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
		return filepath.Join("~", rel)
	}
	return path
}
