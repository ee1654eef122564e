package client

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testConfig() Config {
	return Config{
		Server:     "https://127.0.0.1:15011",
		GRPCServer: "127.0.0.1:15010",
		CACert:     "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		Token:      "s3cret",
	}
}

func TestWriteAndLoadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "config")
	want := testConfig()
	if err := WriteConfig(path, want); err != nil {
		t.Fatalf("WriteConfig: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("config mode = %v, want 0600", mode)
	}
	got, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if got != want {
		t.Errorf("LoadConfig = %+v, want %+v", got, want)
	}
	// Overwriting replaces the file whole and leaves no temporary file behind.
	want.Token = "rotated"
	if err := WriteConfig(path, want); err != nil {
		t.Fatalf("WriteConfig again: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after rewrite, want only the config", len(entries))
	}
	if got, _ := LoadConfig(path); got.Token != "rotated" {
		t.Errorf("token after rewrite = %q, want rotated", got.Token)
	}
}

func TestLoadConfigMissing(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	path := filepath.Join(home, ".weft", "control", "config")
	_, err := LoadConfig(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadConfig of a missing file: err = %v, want fs.ErrNotExist", err)
	}
	const want = "no client config at ~/.weft/control/config: start 'weft control' first or pass --config"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestLoadConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown field", "server: https://x\ncaCert: x\ntoken: t\nsevrer: y\n", `unknown field "sevrer"`},
		{"http server", "server: http://x:1\ncaCert: x\ntoken: t\n", "must be an https:// URL"},
		{"no token", "server: https://x:1\ncaCert: x\n", "token: required"},
		{"no CA", "server: https://x:1\ntoken: t\n", "caCert: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadConfig = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestResolveConfigPath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv(EnvConfig, "")
	if got, want := ResolveConfigPath(""), filepath.Join(home, ".weft", "control", "config"); got != want {
		t.Errorf("default = %q, want %q", got, want)
	}
	t.Setenv(EnvConfig, "/etc/weft/config")
	if got := ResolveConfigPath(""); got != "/etc/weft/config" {
		t.Errorf("with $%s = %q, want /etc/weft/config", EnvConfig, got)
	}
	if got := ResolveConfigPath("./mine"); got != "./mine" {
		t.Errorf("with flag = %q, want ./mine", got)
	}
}
