//go:build !linux

package podnet

import (
	"context"
	"fmt"
	"net"
	"runtime"
)

// DialContext needs Linux network namespaces.
func (p *Pod) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, fmt.Errorf("podnet: %w (this is %s)", ErrNotLinux, runtime.GOOS)
}

// InNamespace needs Linux network namespaces.
func InNamespace(string, func() error) error {
	return fmt.Errorf("podnet: %w (this is %s)", ErrNotLinux, runtime.GOOS)
}
