package runtime

import (
	"bytes"
	"encoding/binary"
)

// Protocol detection reads a connection's first bytes without consuming
// them, as Envoy's tls_inspector and http_inspector listener filters do,
// and says what they are: a TLS ClientHello (with its SNI and ALPN), the
// HTTP/2 connection preface, an HTTP/1.x request line, or something else.
// The filter chain is then chosen by filter_chain_match (detect_chains.go).

// Application protocols the HTTP inspector reports, as Envoy names them.
const (
	protoHTTP10 = "http/1.0"
	protoHTTP11 = "http/1.1"
	protoH2C    = "h2c"
)

// maxDetectBytes is as much of a connection as detection looks at: a whole
// TLS record (a ClientHello fits in one in practice) or a long request
// line.
const maxDetectBytes = 5 + 1<<14

// h2Preface is the HTTP/2 connection preface of a client with prior
// knowledge (RFC 9113 §3.4).
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// detection is what the first bytes of a connection say.
type detection struct {
	// transport is transportTLS or transportRaw.
	transport string
	// protocols are the application protocols: the ALPN list of a TLS
	// ClientHello, or the HTTP version of a plaintext connection.
	protocols []string
	// serverName is the SNI of a TLS ClientHello.
	serverName string
}

// detectVerdict says whether detection could decide.
type detectVerdict int

const (
	// needMore: the bytes so far could still be TLS or HTTP.
	needMore detectVerdict = iota
	// decided: the detection is final.
	decided
)

// classify reads the first bytes of a connection. With final set (no more
// bytes will come in time: a timeout, the client's EOF, a full buffer) it
// always decides; otherwise it may ask for more.
func classify(b []byte, final bool) (detection, detectVerdict) {
	raw := detection{transport: transportRaw}
	if len(b) == 0 {
		if final {
			return raw, decided
		}
		return raw, needMore
	}
	if b[0] == tlsRecordHandshake {
		return classifyTLS(b, final)
	}
	if p := h2Preface[:min(len(b), len(h2Preface))]; bytes.Equal(b[:len(p)], p) {
		switch {
		case len(b) >= len(h2Preface):
			return detection{transport: transportRaw, protocols: []string{protoH2C}}, decided
		case !final:
			return raw, needMore
		}
		// "PRI * HTTP/2.0..." cut short: fall through to the HTTP/1
		// request-line check, which calls it what Envoy would.
	}
	return classifyHTTP1(b, final)
}

// classifyHTTP1 recognises an HTTP/1.x request line: a method token, a
// space, a target, a space and HTTP/1.0 or HTTP/1.1. A line cut short (the
// client waits for nothing more, or the line is longer than the buffer)
// is HTTP once it has a method and a space, which no binary protocol
// starts with by chance.
func classifyHTTP1(b []byte, final bool) (detection, detectVerdict) {
	raw := detection{transport: transportRaw}
	sp := -1
	for i, c := range b {
		if c == ' ' {
			sp = i
			break
		}
		// Methods are tokens; every registered one is upper case
		// letters, with the odd '-' or '_'.
		if upper := 'A' <= c && c <= 'Z'; i >= 24 || !upper && c != '-' && c != '_' {
			return raw, decided
		}
	}
	if sp == -1 {
		if final {
			return raw, decided
		}
		return raw, needMore
	}
	if sp == 0 {
		return raw, decided
	}
	eol := bytes.IndexByte(b, '\n')
	if eol == -1 {
		if final {
			// A method and a space, and no end of line in time.
			return detection{transport: transportRaw, protocols: []string{protoHTTP11}}, decided
		}
		return raw, needMore
	}
	line := bytes.TrimSuffix(b[:eol], []byte("\r"))
	switch {
	case bytes.HasSuffix(line, []byte(" HTTP/1.1")):
		return detection{transport: transportRaw, protocols: []string{protoHTTP11}}, decided
	case bytes.HasSuffix(line, []byte(" HTTP/1.0")):
		return detection{transport: transportRaw, protocols: []string{protoHTTP10}}, decided
	}
	// A line that is no request line: a text protocol such as Redis's
	// inline commands or SMTP's.
	return raw, decided
}

// classifyTLS recognises a TLS ClientHello: a handshake record (0x16) of
// version 3.x whose first message is a ClientHello (type 1). Its SNI and
// ALPN are read when the whole message is in the first record; a hello
// that spans records, or is cut short when final, is still TLS.
func classifyTLS(b []byte, final bool) (detection, detectVerdict) {
	tlsOnly := detection{transport: transportTLS}
	raw := detection{transport: transportRaw}
	if len(b) < 6 {
		if final {
			return raw, decided
		}
		return raw, needMore
	}
	// Record: type, version (3, 0..4), length; then the handshake type.
	if b[1] != 3 || b[2] > 4 || b[5] != 1 {
		return raw, decided
	}
	recLen := int(binary.BigEndian.Uint16(b[3:5]))
	if recLen < 4 || recLen > 1<<14 {
		return raw, decided
	}
	rec := b[5:]
	if len(rec) < recLen {
		if final {
			return tlsOnly, decided
		}
		return tlsOnly, needMore
	}
	rec = rec[:recLen]
	msgLen := int(rec[1])<<16 | int(rec[2])<<8 | int(rec[3])
	body := rec[4:]
	if len(body) < msgLen {
		// The hello continues in the next record: TLS, without names.
		return tlsOnly, decided
	}
	d := tlsOnly
	d.serverName, d.protocols = parseClientHello(body[:msgLen])
	return d, decided
}

// parseClientHello returns the SNI host name and the ALPN protocols of a
// ClientHello body, or what of them it could read.
func parseClientHello(b []byte) (serverName string, alpn []string) {
	r := reader(b)
	// version, random, session ID, cipher suites, compression methods
	if !r.skip(2+32) || !r.skipVec(1) || !r.skipVec(2) || !r.skipVec(1) {
		return "", nil
	}
	exts, ok := r.vec(2)
	if !ok {
		return "", nil
	}
	for len(exts) >= 4 {
		typ := binary.BigEndian.Uint16(exts)
		n := int(binary.BigEndian.Uint16(exts[2:]))
		if len(exts) < 4+n {
			return serverName, alpn
		}
		data := reader(exts[4 : 4+n])
		exts = exts[4+n:]
		switch typ {
		case 0: // server_name
			list, ok := data.vec(2)
			if !ok {
				continue
			}
			for l := reader(list); len(l) >= 3; {
				nameType := l[0]
				l = l[1:]
				name, ok := l.vec(2)
				if !ok {
					break
				}
				if nameType == 0 && serverName == "" {
					serverName = string(name)
				}
			}
		case 16: // application_layer_protocol_negotiation
			list, ok := data.vec(2)
			if !ok {
				continue
			}
			for l := reader(list); len(l) > 0; {
				p, ok := l.vec(1)
				if !ok || len(p) == 0 {
					break
				}
				alpn = append(alpn, string(p))
			}
		}
	}
	return serverName, alpn
}

// reader reads the length-prefixed vectors of TLS messages.
type reader []byte

func (r *reader) skip(n int) bool {
	if len(*r) < n {
		return false
	}
	*r = (*r)[n:]
	return true
}

// vec reads a vector with a size-byte length prefix.
func (r *reader) vec(size int) ([]byte, bool) {
	if len(*r) < size {
		return nil, false
	}
	n := 0
	for _, c := range (*r)[:size] {
		n = n<<8 | int(c)
	}
	if len(*r) < size+n {
		return nil, false
	}
	v := (*r)[size : size+n]
	*r = (*r)[size+n:]
	return v, true
}

func (r *reader) skipVec(size int) bool {
	_, ok := r.vec(size)
	return ok
}
