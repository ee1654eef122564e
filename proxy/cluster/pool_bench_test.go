package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/internal/testpki"
	"github.com/weftmesh/weft/proxy/tlsx"
)

// mtlsPeer is a peer proxy's inbound side: HTTP/2 over mutual TLS, SVIDs
// from one mesh CA, as between two sidecars.
type mtlsPeer struct {
	addr   string
	client *tls.Config
}

func startMTLSPeer(b *testing.B) *mtlsPeer {
	ca := testpki.NewCA(b, "mesh")
	bundle, err := tlsx.NewTrustBundle(ca.PEM())
	if err != nil {
		b.Fatal(err)
	}
	serverID := spiffe.ID{TrustDomain: "weft.test", Namespace: "default", Service: "b"}
	clientID := spiffe.ID{TrustDomain: "weft.test", Namespace: "default", Service: "a"}
	serverCert := ca.Issue(b, serverID, testpki.Options{})
	clientCert := ca.Issue(b, clientID, testpki.Options{})
	exact, err := tlsx.NewStringMatcher(tlsx.MatchExact, serverID.String(), false)
	if err != nil {
		b.Fatal(err)
	}
	prefix, err := tlsx.NewStringMatcher(tlsx.MatchPrefix, "spiffe://weft.test/", false)
	if err != nil {
		b.Fatal(err)
	}
	bundleOf := func() *tlsx.TrustBundle { return bundle }
	serverConf := tlsx.ServerConfig(tlsx.IdentityFunc(func() *tls.Certificate { return &serverCert }),
		&tlsx.PeerValidator{Bundle: bundleOf, BundleName: "ROOTCA", Usage: x509.ExtKeyUsageClientAuth, URISANs: []tlsx.StringMatcher{prefix}},
		[]string{"h2"})
	clientConf := tlsx.ClientConfig(tlsx.IdentityFunc(func() *tls.Certificate { return &clientCert }),
		&tlsx.PeerValidator{Bundle: bundleOf, BundleName: "ROOTCA", Usage: x509.ExtKeyUsageServerAuth, URISANs: []tlsx.StringMatcher{exact}},
		[]string{"h2"}, "")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	payload := strings.Repeat("x", 1024)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, payload)
		}),
		TLSConfig: serverConf,
		Protocols: new(http.Protocols),
	}
	srv.Protocols.SetHTTP2(true)
	go srv.ServeTLS(ln, "", "")
	b.Cleanup(func() { srv.Close() })
	return &mtlsPeer{addr: ln.Addr().String(), client: clientConf}
}

func (p *mtlsPeer) get(b *testing.B, c *Cluster) {
	req, _ := http.NewRequest(http.MethodGet, "https://ignored/bench", nil)
	res, err := c.RoundTrip(req, c.Endpoints()[0])
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		b.Fatal(err)
	}
	res.Body.Close()
	if res.ProtoMajor != 2 {
		b.Fatalf("proto %s, want HTTP/2", res.Proto)
	}
}

// BenchmarkMTLSPool compares a request over the pool's established HTTP/2
// connection to a peer proxy ("pooled") with one that must first connect
// and complete the mutual TLS handshake ("new-connection"). The ratio is
// what pooling saves; the pool must keep every request on the first path.
func BenchmarkMTLSPool(b *testing.B) {
	peer := startMTLSPeer(b)
	settings := Settings{Name: "peer", TLS: peer.client, Protocol: HTTP2}
	spec := []EndpointSpec{{Address: peer.addr, Healthy: true}}

	b.Run("pooled", func(b *testing.B) {
		pool := NewPool(settings)
		defer pool.Close()
		c := New("peer", pool, roundRobin(), spec)
		peer.get(b, c)
		b.ReportAllocs()
		for b.Loop() {
			peer.get(b, c)
		}
		if st := c.Endpoints()[0].Stats(); st.TotalConnections != 1 {
			b.Fatalf("%d connections, want 1", st.TotalConnections)
		}
	})
	b.Run("new-connection", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pool := NewPool(settings)
			peer.get(b, New("peer", pool, roundRobin(), spec))
			pool.Close()
		}
	})
}
