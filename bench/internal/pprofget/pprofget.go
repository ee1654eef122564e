// Package pprofget saves a profile that a process serves over HTTP
// (net/http/pprof's /debug/pprof/...) to a file, for the benchmarks.
package pprofget

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
)

// Save writes what url answers to path. Anything but 200 OK is an error
// that quotes the start of the answer; a file is only left behind when the
// whole profile was written.
func Save(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}
