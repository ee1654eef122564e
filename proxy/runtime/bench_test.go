package runtime

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkMeshHTTP1 sends 1 KiB requests, echoed by the app, through the
// whole sidecar pair (plaintext HTTP/1.1 in, pooled HTTP/2 over mutual TLS
// between the proxies, HTTP/1.1 to the app), and the same requests straight
// to the app. Compare the two in one run: the difference is what the pair
// adds. Client, proxies and app share the machine's cores.
func BenchmarkMeshHTTP1(b *testing.B) {
	m := newMesh(b)
	payload := strings.Repeat("x", 1024)
	for _, target := range []struct{ name, addr string }{
		{"direct", m.web.addr},
		{"mesh", m.local[svcWeb]},
	} {
		b.Run(target.name, func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			url := "http://" + target.addr + "/echo"
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			b.SetParallelism(8) // 8 × GOMAXPROCS requests in flight
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := c.Post(url, "text/plain", strings.NewReader(payload))
					if err != nil {
						b.Error(err)
						return
					}
					n, _ := io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 || n != int64(len(payload))+5 {
						b.Errorf("status %d, %d bytes", res.StatusCode, n)
						return
					}
				}
			})
		})
	}
}

// BenchmarkMeshTCP copies 64 KiB each way per connection through the pair
// (plaintext in, mutual TLS between the proxies), connection setup included.
func BenchmarkMeshTCP(b *testing.B) {
	m := newMesh(b)
	payload := bytes.Repeat([]byte("y"), 64<<10)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		c, err := net.Dial("tcp", m.local[svcEcho])
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			c.Write(payload)
			c.(*net.TCPConn).CloseWrite()
		}()
		n, err := io.Copy(io.Discard, c)
		c.Close()
		if err != nil || n != int64(len(payload)) {
			b.Fatalf("%d bytes, %v", n, err)
		}
	}
}
