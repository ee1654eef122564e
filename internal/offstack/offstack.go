// Package offstack runs deep calls off the stack of a long-lived goroutine.
//
// A goroutine's stack grows to fit the deepest call it makes, and a garbage
// collection shrinks it only while the goroutine uses less than a quarter
// of it. A gRPC stream's handler lives as long as its proxy and spends
// that life parked in Recv, a few KB deep: one translation or etcd write
// on it leaves it 16 to 32 KB for good, and thousands of streams multiply
// that. Run on a goroutine of their own, such calls leave their stack to
// the runtime's pool when they return.
package offstack

// Do runs f on a goroutine of its own and returns what f returns. The
// caller waits for it: f may use what the caller owns.
func Do(f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	return <-done
}
