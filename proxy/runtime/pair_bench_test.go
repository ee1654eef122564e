package runtime

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/internal/testpki"
)

// pairBenchConns is the number of keep-alive connections of the load, as
// in the data-plane benchmark (fortio -c 16).
const pairBenchConns = 16

// pairPayload is the request body; the app echoes it.
var pairPayload = bytes.Repeat([]byte("x"), 1024)

// BenchmarkPair sends 1 KiB POSTs over 16 keep-alive HTTP/1.1 connections
// straight to an echo app ("direct") and through the sidecar pair ("pair":
// plaintext HTTP/1.1 in, pooled HTTP/2 over mutual TLS between the proxies,
// HTTP/1.1 to the app). The client is a minimal HTTP/1.1 writer and reader so
// that the load costs little next to the proxies.
//
// Besides ns/op it reports cpu-ns/op: the process's CPU time (user and
// system) per request. Everything runs in one process, so the pair's own
// cost per request is pair's cpu-ns/op minus direct's, and likewise for
// allocs/op and B/op. Run with -cpu 1 to give the whole process one P, or
// compare the real processes for a per-proxy split.
func BenchmarkPair(b *testing.B) {
	app := startPairEchoApp(b)
	ca := testpki.NewCA(b, "mesh root")
	server := New(Options{Identity: newIdentity(b, ca, svcWeb), Metrics: prometheus.NewRegistry()})
	b.Cleanup(func() { server.Close() })
	if err := server.Apply(serverResources(b, svcWeb, serverIP+":0", app, ca.PEM())); err != nil {
		b.Fatal(err)
	}
	inbound := server.ListenerAddr(xdsmeta.InboundListener).String()
	client := New(Options{Identity: newIdentity(b, ca, svcA), Metrics: prometheus.NewRegistry()})
	b.Cleanup(func() { client.Close() })
	res := emptyResources()
	res.Secrets[xdsmeta.SecretRootCA] = rootCA(ca.PEM())
	addUpstream(b, res, svcWeb, clientIP+":0", inbound)
	if err := client.Apply(res); err != nil {
		b.Fatal(err)
	}
	local := client.ListenerAddr(outboundListener(b, svcWeb, clientIP+":0").Name).String()

	for _, target := range []struct{ name, addr string }{{"direct", app}, {"pair", local}} {
		b.Run(target.name, func(b *testing.B) {
			runPairLoad(b, target.addr)
		})
	}
}

// runPairLoad spreads b.N requests over pairBenchConns connections.
func runPairLoad(b *testing.B, addr string) {
	conns := make([]*h1Conn, pairBenchConns)
	for i := range conns {
		c, err := dialH1(addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		// Warm every connection and the pooled upstream connection.
		if err := c.roundTrip(); err != nil {
			b.Fatal(err)
		}
		conns[i] = c
	}
	b.SetBytes(int64(len(pairPayload)))
	b.ReportAllocs()
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	cpu0 := cpuTime()
	b.ResetTimer()
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := c.roundTrip(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// h1Conn is a keep-alive HTTP/1.1 client connection that sends one fixed
// request and reads the response by its Content-Length.
type h1Conn struct {
	net.Conn
	br  *bufio.Reader
	req []byte
	buf []byte
}

func dialH1(addr string) (*h1Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	req := fmt.Appendf(nil, "POST /echo HTTP/1.1\r\nHost: %s\r\nUser-Agent: pair-bench\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n%s",
		addr, len(pairPayload), pairPayload)
	return &h1Conn{Conn: c, br: bufio.NewReaderSize(c, 16<<10), req: req, buf: make([]byte, 16<<10)}, nil
}

func (c *h1Conn) roundTrip() error {
	if _, err := c.Write(c.req); err != nil {
		return err
	}
	status, err := c.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("status line %q", status)
	}
	length := -1
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if length != len(pairPayload) {
		return fmt.Errorf("content-length %d, want %d", length, len(pairPayload))
	}
	_, err = io.ReadFull(c.br, c.buf[:length])
	return err
}

// startPairEchoApp is an HTTP/1.1 app that answers a request with its body,
// as fortio's echo does.
func startPairEchoApp(t testing.TB) string {
	ln := listen(t, backendIP)
	bufs := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := bufs.Get().(*bytes.Buffer)
		defer bufs.Put(buf)
		buf.Reset()
		_, _ = buf.ReadFrom(r.Body)
		w.Header()["Content-Type"] = []string{"application/octet-stream"}
		w.Header()["Content-Length"] = []string{strconv.Itoa(buf.Len())}
		_, _ = w.Write(buf.Bytes())
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
