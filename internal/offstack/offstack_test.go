package offstack

import (
	"errors"
	"runtime"
	"testing"
)

//go:noinline
func deep(n int) int {
	var buf [512]byte
	buf[n%512] = byte(n)
	if n == 0 {
		return int(buf[0])
	}
	return deep(n-1) + int(buf[(n+1)%512])
}

func TestDoReturnsWhatFReturns(t *testing.T) {
	want := errors.New("from f")
	ran := false
	if err := Do(func() error { ran = true; return want }); err != want || !ran {
		t.Fatalf("Do = %v (ran %v), want f's error", err, ran)
	}
	if err := Do(func() error { return nil }); err != nil {
		t.Fatalf("Do = %v, want nil", err)
	}
}

// parkAt blocks on stop n frames deep, about n/2 KB down the stack, as a
// stream's goroutine waits in Recv.
//
//go:noinline
func parkAt(n int, stop <-chan struct{}) int {
	var buf [512]byte
	buf[n%512] = byte(n)
	if n == 0 {
		<-stop
		return int(buf[0])
	}
	return parkAt(n-1, stop) + int(buf[(n+1)%512])
}

// TestDoKeepsTheCallersStackSmall parks goroutines a few KB deep after a
// deep call, made directly or through Do, and compares the stack memory
// they keep once collections have shrunk what they can.
func TestDoKeepsTheCallersStackSmall(t *testing.T) {
	const n = 500
	kept := func(through bool) uint64 {
		before := stackInuse()
		stop := make(chan struct{})
		parked := make(chan struct{})
		for range n {
			go func() {
				if through {
					_ = Do(func() error { deep(64); return nil })
				} else {
					deep(64)
				}
				parked <- struct{}{}
				parkAt(10, stop)
			}()
		}
		for range n {
			<-parked
		}
		runtime.Gosched()
		after := stackInuse()
		close(stop)
		return (after - min(after, before)) / n
	}
	direct, through := kept(false), kept(true)
	t.Logf("stack kept per parked goroutine: %d B after a deep call on it, %d B through Do", direct, through)
	if through > direct*3/4 {
		t.Errorf("through Do a parked goroutine keeps %d B of stack, want well under the %d B of a direct deep call", through, direct)
	}
}

func stackInuse() uint64 {
	for range 4 {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.StackInuse
}
