package main

import "context"

// direct sends the load straight to the backends: the floor every other
// configuration's added latency is measured from.
type direct struct{}

func (*direct) prepare(context.Context, *env) error { return nil }

func (*direct) startPair(_ context.Context, e *env, b backend, _ pairAddrs) (*pair, error) {
	return &pair{entries: entriesFor(b, e.backends[b].addr)}, nil
}

var _ config = (*direct)(nil)
