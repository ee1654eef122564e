package dns

import (
	"errors"
	"fmt"

	"golang.org/x/net/dns/dnsmessage"
)

// answerLocal answers q when it asks for a mesh name the table knows: A
// with the VIP (AAAA with it when the VIP is IPv6), and an empty NOERROR
// for the other address family, so that a dual-stack client uses the VIP
// rather than waiting or falling back to an upstream. local is false when
// the query must go upstream. A malformed query is an error, with a
// FORMERR response when its header could be read.
func answerLocal(q []byte, podNS, domain string, t Table) (resp []byte, local bool, err error) {
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
	svc, ns, ok := meshName(question.Name.String(), podNS, domain)
	if !ok {
		return nil, false, nil
	}
	vip, ok := t.VIP(svc, ns)
	if !ok || !vip.IsValid() {
		return nil, false, nil
	}
	vip = vip.Unmap()
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
	switch {
	case question.Type == dnsmessage.TypeA && vip.Is4():
		err = b.AResource(rh, dnsmessage.AResource{A: vip.As4()})
	case question.Type == dnsmessage.TypeAAAA && vip.Is6():
		err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: vip.As16()})
	}
	if err != nil {
		return nil, false, err
	}
	out, err := b.Finish()
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
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
