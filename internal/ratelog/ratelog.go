// Package ratelog bounds how often a log line is written. Refusals (a failed
// TLS handshake, a denied request, a rate-limited call) must each be
// visible in the log with their reason, but an attacker or a
// misconfigured client can cause thousands a second; a Limiter lets a burst
// through, then one line per interval, and tells how many it held back.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limiter writes at most Burst lines at once, then one per Every, to Log.
// The zero value is not usable; use New.
type Limiter struct {
	log   *slog.Logger
	level slog.Level
	every time.Duration
	burst int

	mu         sync.Mutex
	tokens     int
	last       time.Time // when tokens were last topped up
	suppressed int
	now        func() time.Time
}

// New returns a Limiter that writes to log at level: burst lines at once,
// then one per every.
func New(log *slog.Logger, level slog.Level, burst int, every time.Duration) *Limiter {
	if burst < 1 {
		burst = 1
	}
	return &Limiter{log: log, level: level, every: every, burst: burst, tokens: burst, now: time.Now}
}

// Log writes msg with args if the limit allows; otherwise it counts it. The
// next line written carries "suppressed": how many were held back since.
func (l *Limiter) Log(msg string, args ...any) {
	if !l.log.Enabled(context.Background(), l.level) {
		return
	}
	l.mu.Lock()
	now := l.now()
	if l.last.IsZero() {
		l.last = now
	}
	if l.every > 0 {
		if n := int(now.Sub(l.last) / l.every); n > 0 {
			l.tokens = min(l.burst, l.tokens+n)
			l.last = l.last.Add(time.Duration(n) * l.every)
		}
	}
	if l.tokens == 0 {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.tokens--
	suppressed := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	l.log.Log(context.Background(), l.level, msg, args...)
}
