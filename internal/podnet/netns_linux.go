package podnet

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNamespace runs f on an OS thread that has entered the network
// namespace ns (a name under /run/netns): the sockets f opens live in ns
// and keep working from any goroutine. The thread returns to its own
// namespace afterwards and goes back to the scheduler; if it cannot, it
// stays locked, and the runtime ends it with the goroutine rather than run
// anything else in ns. (The thread must not end otherwise: children it
// forked with Pdeathsig would die with it.)
func InNamespace(ns string, f func() error) error {
	runtime.LockOSThread()
	own, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("podnet: open own network namespace: %w", err)
	}
	defer unix.Close(own)
	target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("podnet: open network namespace %s: %w", ns, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("podnet: enter network namespace %s: %w", ns, err)
	}
	ferr := f()
	if err := unix.Setns(own, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("podnet: leave network namespace %s: %w", ns, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// DialContext opens a connection from inside the pod, as one of its own
// processes would (its iptables rules apply).
//
// The dial runs on a goroutine of its own, so the caller's goroutine is
// never left locked to a thread, whatever happens in InNamespace.
func (p *Pod) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var r result
		r.err = InNamespace(p.NS, func() error {
			var d net.Dialer
			var err error
			r.c, err = d.DialContext(ctx, network, addr)
			return err
		})
		ch <- r
	}()
	r := <-ch
	return r.c, r.err
}
