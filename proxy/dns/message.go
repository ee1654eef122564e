package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// answerLocal answers q when it asks for a mesh name the table knows, or
// for an ExternalService host hosts knows: A with the VIP or the host's
// IPv4 addresses (AAAA with the IPv6 ones), and an empty NOERROR for the
// other address family when it has none, so that a dual-stack client uses
// what the capture listener routes rather than waiting or falling back to
// an upstream. local is false when the query must go upstream. A
// malformed query is an error, with a FORMERR response when its header
// could be read.
func answerLocal(q []byte, podNS, domain string, t Table, hosts HostTable) (resp []byte, local bool, err error) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, false, fmt.Errorf("dns: malformed query header: %w", err)
	}
	if h.Response {
		// Never answer an answer: that is how two resolvers loop.
		return nil, false, errors.New("dns: received a response, not a query")
	}
	if h.OpCode != 0 {
		return nil, false, nil
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return failure(q, dnsmessage.RCodeFormatError), false, fmt.Errorf("dns: malformed question: %w", err)
	}
	if len(qs) != 1 {
		return nil, false, nil
	}
	question := qs[0]
	if question.Class != dnsmessage.ClassINET || (question.Type != dnsmessage.TypeA && question.Type != dnsmessage.TypeAAAA) {
		return nil, false, nil
	}
	addrs := localAddrs(question.Name.String(), podNS, domain, t, hosts)
	if len(addrs) == 0 {
		return nil, false, nil
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true,
	})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, false, err
	}
	if err := b.Question(question); err != nil {
		return nil, false, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, false, err
	}
	rh := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: meshTTL}
	for _, a := range addrs {
		switch {
		case question.Type == dnsmessage.TypeA && a.Is4():
			err = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
		case question.Type == dnsmessage.TypeAAAA && a.Is6():
			err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return nil, false, err
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// localAddrs are the addresses the proxy answers name with: a mesh
// service's VIP, else an ExternalService host's addresses (an exact host
// name: the search-path forms a stub resolver tries first go upstream and
// fail there, as they would without the proxy). None means the name is
// not the proxy's to answer.
func localAddrs(name, podNS, domain string, t Table, hosts HostTable) []netip.Addr {
	if svc, ns, ok := meshName(name, podNS, domain); ok {
		if vip, ok := t.VIP(svc, ns); ok && vip.IsValid() {
			return []netip.Addr{vip.Unmap()}
		}
	}
	if hosts == nil {
		return nil
	}
	host := strings.ToLower(strings.TrimSuffix(name, "."))
	if host == "" {
		return nil
	}
	var out []netip.Addr
	for _, a := range hosts.HostAddrs(host) {
		if a.IsValid() {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// failure is a response to q with rcode and q's question, or nil when q
// has not even a header.
func failure(q []byte, rcode dnsmessage.RCode) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, OpCode: h.OpCode, RCode: rcode,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true,
	})
	if err := b.StartQuestions(); err != nil {
		return nil
	}
	if question, err := p.Question(); err == nil {
		if err := b.Question(question); err != nil {
			return nil
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
