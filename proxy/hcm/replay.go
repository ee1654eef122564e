package hcm

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// maxReplayBody is the largest request body kept for retries and mirrors,
// Envoy's default per-request buffer limit.
const maxReplayBody = 64 << 10

var errAttemptOver = errors.New("hcm: request attempt abandoned for a retry")

// replayBody tees a downstream request body while attempts read it, so
// that a retry can send it again. It keeps at most maxReplayBody bytes;
// beyond that it only streams, and no retry is possible.
type replayBody struct {
	src io.Reader
	// readMu serialises reads of src; it may be held across a blocking
	// read, so mu guards the rest and is never held while reading.
	readMu sync.Mutex

	mu       sync.Mutex
	buf      []byte
	total    int
	eof      bool
	err      error
	overflow bool
}

func newReplayBody(src io.Reader) *replayBody { return &replayBody{src: src} }

// attempt returns a reader of the whole body for one attempt.
func (b *replayBody) attempt() *attemptBody { return &attemptBody{b: b} }

// replayable reports whether an attempt can still start from the beginning.
func (b *replayBody) replayable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.overflow && b.err == nil
}

// complete returns the whole body once it has been read to its end within
// the limit. The slice is never modified afterwards.
func (b *replayBody) complete() ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.eof || b.overflow || b.err != nil {
		return nil, false
	}
	return b.buf[:len(b.buf):len(b.buf)], true
}

// attemptBody is one attempt's view of a replayBody. Closing it (the
// transport does so when the attempt ends) detaches it: later reads fail,
// so an abandoned attempt cannot take bytes from the next one.
type attemptBody struct {
	b        *replayBody
	pos      int
	detached atomic.Bool
}

func (a *attemptBody) Read(p []byte) (int, error) {
	b := a.b
	for {
		if a.detached.Load() {
			return 0, errAttemptOver
		}
		b.mu.Lock()
		switch {
		case a.pos < b.total && !b.overflow:
			n := copy(p, b.buf[a.pos:])
			a.pos += n
			b.mu.Unlock()
			return n, nil
		case a.pos < b.total:
			b.mu.Unlock()
			return 0, errAttemptOver // the bytes it lacks were not kept
		case b.eof:
			b.mu.Unlock()
			return 0, io.EOF
		case b.err != nil:
			err := b.err
			b.mu.Unlock()
			return 0, err
		}
		b.mu.Unlock()

		b.readMu.Lock()
		b.mu.Lock()
		behind := a.pos < b.total || b.eof || b.err != nil
		b.mu.Unlock()
		if behind {
			// Another attempt read meanwhile: serve from what it kept.
			b.readMu.Unlock()
			continue
		}
		n, err := b.src.Read(p)
		b.mu.Lock()
		if n > 0 {
			if !b.overflow {
				if b.total+n > maxReplayBody {
					b.overflow, b.buf = true, nil
				} else {
					b.buf = append(b.buf, p[:n]...)
				}
			}
			b.total += n
			a.pos += n
		}
		switch {
		case err == io.EOF:
			b.eof = true
		case err != nil:
			b.err = err
		}
		b.mu.Unlock()
		b.readMu.Unlock()
		return n, err
	}
}

func (a *attemptBody) Close() error {
	a.detached.Store(true)
	return nil
}
