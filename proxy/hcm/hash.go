package hcm

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/proxy/route"
)

// FNV-1a, 64 bits: allocation-free and stable across processes, so every
// proxy maps a key to the same point of a ring.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// requestHash computes a request's hash key from the route's hash policies
// the way Envoy combines them: each key that exists is folded in (rotate
// left by one, xor), and a terminal policy that produced a key ends the
// walk. ok is false when no policy produced a key. When a cookie policy with
// a ttl finds no cookie, it makes one from the client's address and returns
// it in setCookie for the response.
func requestHash(policies []route.HashPolicy, r *http.Request) (hash uint64, ok bool, setCookie string) {
	for i := range policies {
		p := &policies[i]
		var key string
		var found bool
		switch p.Kind {
		case route.HashHeader:
			if vv := r.Header[p.Name]; len(vv) > 0 {
				key, found = vv[0], true
			}
		case route.HashCookie:
			if c, err := r.Cookie(p.Name); err == nil {
				key, found = c.Value, true
			} else if p.HasTTL {
				key = strconv.FormatUint(hashString(r.RemoteAddr), 16)
				found = true
				setCookie = newHashCookie(p, key)
			}
		case route.HashSourceIP:
			if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
				key, found = host, true
			} else if r.RemoteAddr != "" {
				key, found = r.RemoteAddr, true
			}
		}
		if !found {
			continue
		}
		k := hashString(key)
		if ok {
			hash = (hash<<1 | hash>>63) ^ k
		} else {
			hash, ok = k, true
		}
		if p.Terminal {
			break
		}
	}
	return hash, ok, setCookie
}

func newHashCookie(p *route.HashPolicy, value string) string {
	var b strings.Builder
	b.WriteString(p.Name)
	b.WriteString("=\"")
	b.WriteString(value)
	b.WriteByte('"')
	if p.CookieTTL > 0 {
		b.WriteString("; Max-Age=")
		b.WriteString(strconv.FormatInt(int64(p.CookieTTL.Seconds()), 10))
	}
	if p.CookiePath != "" {
		b.WriteString("; Path=")
		b.WriteString(p.CookiePath)
	}
	b.WriteString("; HttpOnly")
	return b.String()
}
