package jwt

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/filter"
)

// BenchmarkDecodeHeaders measures a request with a valid token: served
// from the verified-token cache (the common case: a client reuses its
// token), and verified from scratch, RS256 and ES256.
func BenchmarkDecodeHeaders(b *testing.B) {
	rs, ec := newRSASigner(b, "rs-1"), newECSigner(b, "ec-1")
	exp := testNow.Add(time.Hour)
	for _, bc := range []struct {
		name   string
		token  string
		cached bool
	}{
		{name: "RS256/cached", token: rs.mint(b, claims("https://auth.shop.example", "catalog", exp)), cached: true},
		{name: "RS256/verify", token: rs.mint(b, claims("https://auth.shop.example", "catalog", exp))},
		{name: "ES256/cached", token: ec.mint(b, claims("partner", nil, exp)), cached: true},
		{name: "ES256/verify", token: ec.mint(b, claims("partner", nil, exp))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newTestFilter(b, shopConfig(rs, ec))
			r := httptest.NewRequest(http.MethodGet, "/admin", nil)
			h := "Bearer " + bc.token
			b.ReportAllocs()
			for b.Loop() {
				r.Header["Authorization"] = []string{h}
				if !bc.cached {
					f.cache.forget(cacheKey{provider: f.providers[0], raw: bc.token})
					f.cache.forget(cacheKey{provider: f.providers[1], raw: bc.token})
				}
				if d := f.DecodeHeaders(r, &filter.Stream{}, nil); d.Reply != nil {
					b.Fatal(d.Reply.Reason)
				}
			}
		})
	}
}

// forget drops k from the cache, so that the next check verifies again.
func (c *tokenCache) forget(k cacheKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[k]; e != nil {
		c.unlinkLocked(e)
		delete(c.entries, k)
	}
}
