package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), slog.LevelWarn, 2, time.Second)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for range 5 {
		l.Log("refused", "reason", "x")
	}
	if n := strings.Count(buf.String(), "refused"); n != 2 {
		t.Fatalf("%d lines in a burst of 5 with burst 2, want 2:\n%s", n, buf.String())
	}
	now = now.Add(1500 * time.Millisecond)
	buf.Reset()
	l.Log("refused", "reason", "y")
	if !strings.Contains(buf.String(), "suppressed=3") {
		t.Fatalf("after the interval the line must tell the 3 held back:\n%s", buf.String())
	}
	buf.Reset()
	l.Log("refused")
	if buf.Len() != 0 {
		t.Fatalf("a line within the interval was written: %s", buf.String())
	}
}

func TestLimiterDisabledLevel(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError})), slog.LevelWarn, 1, time.Second)
	l.Log("refused")
	if buf.Len() != 0 {
		t.Fatal("a line below the handler's level was written")
	}
}
