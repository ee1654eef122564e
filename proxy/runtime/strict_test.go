package runtime

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/internal/testpki"
)

// tlsGet requests the server-side proxy's inbound listener directly, as a
// peer proxy with the given client certificate would.
func tlsGet(addr string, certs ...tls.Certificate) error {
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		Certificates:       certs,
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS13,
	}}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/")
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		return errors.New(res.Status)
	}
	return nil
}

func TestMeshStrictInbound(t *testing.T) {
	m := newMesh(t)
	inbound := m.inbound[svcWeb]
	peer := m.ca.Issue(t, svcA.id(), testpki.Options{})

	if err := tlsGet(inbound, peer); err != nil {
		t.Fatalf("a mesh peer is refused: %v", err)
	}
	t.Run("plaintext", func(t *testing.T) {
		res, err := h1Client(t).Get("http://" + inbound + "/")
		if err == nil {
			res.Body.Close()
			t.Fatalf("plaintext request answered %s", res.Status)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		if err := tlsGet(inbound); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("foreign CA", func(t *testing.T) {
		foreign := testpki.NewCA(t, "foreign root").Issue(t, svcA.id(), testpki.Options{})
		if err := tlsGet(inbound, foreign); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("expired", func(t *testing.T) {
		expired := m.ca.Issue(t, svcA.id(), testpki.Options{
			NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Minute),
		})
		if err := tlsGet(inbound, expired); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("foreign trust domain", func(t *testing.T) {
		id := svcA.id()
		id.TrustDomain = "elsewhere.test"
		if err := tlsGet(inbound, m.ca.Issue(t, id, testpki.Options{})); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("plaintext TCP", func(t *testing.T) {
		c, err := net.Dial("tcp", m.inbound[svcEcho])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "hello\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, _ := io.ReadAll(c); len(b) != 0 {
			t.Fatalf("plaintext TCP answered %q", b)
		}
	})
	t.Run("TCP peer with the HTTP ALPN", func(t *testing.T) {
		c, err := tls.Dial("tcp", m.inbound[svcEcho], &tls.Config{
			Certificates: []tls.Certificate{peer}, InsecureSkipVerify: true, NextProtos: []string{"h2"},
		})
		if err == nil {
			c.Close()
			t.Fatal("a TCP inbound accepted ALPN h2")
		}
	})
	t.Run("wrong server identity", func(t *testing.T) {
		// A cluster for "impostor" whose endpoint is web's proxy: web's SVID
		// does not match the exact SAN, so the client side refuses it.
		impostor := service{name: "impostor", namespace: "default", protocol: "http"}
		res := m.clientResources(t)
		addUpstream(t, res, impostor, clientIP+":0", inbound)
		if err := m.client.Apply(res); err != nil {
			t.Fatal(err)
		}
		addr := m.client.ListenerAddr(outboundListener(t, impostor, clientIP+":0").Name).String()
		r, body := get(t, h1Client(t), "http://"+addr+"/")
		if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("X-Weft-Error") != "upstream_connect_failure" {
			t.Fatalf("got %d %q %q", r.StatusCode, r.Header.Get("X-Weft-Error"), body)
		}
	})
}

func TestMeshLocalErrors(t *testing.T) {
	m := newMesh(t)
	res := m.clientResources(t)
	// The endpoints of web are gone, and grpc's route names a cluster that is not there.
	res.Endpoints[xdsmeta.OutboundCluster(svcWeb.name, svcWeb.namespace)] = loadAssignment(t, xdsmeta.OutboundCluster(svcWeb.name, svcWeb.namespace))
	delete(res.Clusters, xdsmeta.OutboundCluster(svcGRPC.name, svcGRPC.namespace))
	if err := m.client.Apply(res); err != nil {
		t.Fatal(err)
	}
	c := h1Client(t)
	r, body := get(t, c, "http://"+m.local[svcWeb]+"/")
	if r.StatusCode != 503 || body != "no healthy upstream" || r.Header.Get("X-Weft-Error") != "no_healthy_upstream" {
		t.Errorf("no endpoints: %d %q %q", r.StatusCode, body, r.Header.Get("X-Weft-Error"))
	}
	r, _ = get(t, c, "http://"+m.local[svcGRPC]+"/")
	if r.StatusCode != 503 || r.Header.Get("X-Weft-Error") != "cluster_not_found" {
		t.Errorf("no cluster: %d %q", r.StatusCode, r.Header.Get("X-Weft-Error"))
	}
	// An endpoint nobody listens on.
	dead := listen(t, serverIP)
	deadAddr := dead.Addr().String()
	dead.Close()
	res.Endpoints[xdsmeta.OutboundCluster(svcWeb.name, svcWeb.namespace)] = loadAssignment(t, xdsmeta.OutboundCluster(svcWeb.name, svcWeb.namespace), deadAddr)
	if err := m.client.Apply(res); err != nil {
		t.Fatal(err)
	}
	r, _ = get(t, c, "http://"+m.local[svcWeb]+"/")
	if r.StatusCode != 503 || r.Header.Get("X-Weft-Error") != "upstream_connect_failure" {
		t.Errorf("connect failure: %d %q", r.StatusCode, r.Header.Get("X-Weft-Error"))
	}
}

func tlsDial(addr string, cert tls.Certificate) (*tls.Conn, error) {
	return tls.Dial("tcp", addr, &tls.Config{
		Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true,
		MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"},
	})
}
