package dns

import (
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// FuzzAnswerLocal feeds arbitrary bytes to the query path that answers
// without an upstream: it must never panic, and whatever it answers must be
// a well-formed response to the query it got.
func FuzzAnswerLocal(f *testing.F) {
	for _, name := range []string{"payments.", "payments.default.svc.weft.", "example.com.", "ledger.finance.default.svc.weft.", "api.partner.example."} {
		for _, typ := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA, dnsmessage.TypeMX} {
			m := dnsmessage.Message{Header: dnsmessage.Header{ID: 7, RecursionDesired: true},
				Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}}}
			b, _ := m.Pack()
			f.Add(b)
		}
	}
	f.Add([]byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, q []byte) {
		resp, local, err := answerLocal(q, "default", DefaultDomain, vips, externalHosts)
		if resp == nil {
			if local {
				t.Fatal("answered locally without a response")
			}
			return
		}
		var m dnsmessage.Message
		if uerr := m.Unpack(resp); uerr != nil {
			t.Fatalf("response does not parse: %v (local=%v err=%v)", uerr, local, err)
		}
		if !m.Response || len(m.Questions) > 1 {
			t.Fatalf("bad response header %+v", m.Header)
		}
		if !answers(q, resp) && local {
			t.Fatal("a local answer does not answer its query")
		}
		if f := failure(q, dnsmessage.RCodeServerFailure); f != nil {
			if err := m.Unpack(f); err != nil {
				t.Fatalf("SERVFAIL does not parse: %v", err)
			}
		}
	})
}

// FuzzParseResolvConf checks that any file content yields only ip:port
// upstreams.
func FuzzParseResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 10.0.0.2\nsearch a b\nnameserver ::1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, u := range ParseResolvConf(b) {
			if err := (&Options{Addr: DefaultAddr, Upstreams: []string{u}, Table: vips}).Validate(); err != nil {
				t.Fatalf("upstream %q from resolv.conf: %v", u, err)
			}
		}
	})
}
