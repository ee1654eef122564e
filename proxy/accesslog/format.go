// Package accesslog writes the proxy's access logs: Envoy's access_log
// (file or stdout loggers, JSON or text substitution formats, status,
// flag and duration filters) evaluated on the records the connection
// manager and the TCP proxy fill (proxy/observe). Lines go through a
// bounded queue to one writer per destination: a slow disk drops lines,
// counted, and never slows a request.
package accesslog

import (
	"fmt"
	"strconv"
	"strings"
)

// segment is a literal or one command operator of a format string.
type segment struct {
	literal string
	op      *operator
}

// operator is a compiled %NAME(arg):max%.
type operator struct {
	name string
	arg  string
	max  int
	get  getter
}

// template is a parsed format string.
type template []segment

// parseTemplate parses a substitution format string such as
// "[%START_TIME%] %REQ(:METHOD)% %RESPONSE_CODE%\n". An unknown operator,
// an operator that needs an argument without one, or an unterminated
// operator is an error naming it.
func parseTemplate(s string) (template, error) {
	var t template
	var lit strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '%' {
			lit.WriteByte(c)
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			lit.WriteByte('%')
			i += 2
			continue
		}
		end := operatorEnd(s, i+1)
		if end < 0 {
			return nil, fmt.Errorf("unterminated command operator at offset %d: %q", i, truncate(s[i:], 40))
		}
		op, err := parseOperator(s[i+1 : end])
		if err != nil {
			return nil, err
		}
		if lit.Len() > 0 {
			t = append(t, segment{literal: lit.String()})
			lit.Reset()
		}
		t = append(t, segment{op: op})
		i = end + 1
	}
	if lit.Len() > 0 {
		t = append(t, segment{literal: lit.String()})
	}
	return t, nil
}

// operatorEnd finds the % that closes an operator starting at from,
// skipping a parenthesised argument (which may hold ':').
func operatorEnd(s string, from int) int {
	depth := 0
	for j := from; j < len(s); j++ {
		switch s[j] {
		case '(':
			depth++
		case ')':
			if depth > 0 {
				depth--
			}
		case '%':
			if depth == 0 {
				return j
			}
		case '\n':
			return -1
		}
	}
	return -1
}

func parseOperator(body string) (*operator, error) {
	op := &operator{}
	rest := body
	if open := strings.IndexByte(body, '('); open >= 0 {
		close := strings.LastIndexByte(body, ')')
		if close < open {
			return nil, fmt.Errorf("command operator %%%s%%: unbalanced parenthesis", body)
		}
		op.name, op.arg, rest = body[:open], body[open+1:close], body[close+1:]
	} else {
		op.name, rest, _ = strings.Cut(body, ":")
		if strings.Contains(body, ":") {
			rest = ":" + rest
		} else {
			rest = ""
		}
	}
	if rest != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(rest, ":"))
		if !strings.HasPrefix(rest, ":") || err != nil || n <= 0 {
			return nil, fmt.Errorf("command operator %%%s%%: %q is not a :length", body, rest)
		}
		op.max = n
	}
	def, ok := operators[op.name]
	if !ok {
		return nil, fmt.Errorf("command operator %%%s%% is not supported", op.name)
	}
	if def.needsArg != (op.arg != "") {
		if def.needsArg {
			return nil, fmt.Errorf("command operator %%%s%% needs an argument, such as %%%s(x-request-id)%%", op.name, op.name)
		}
		return nil, fmt.Errorf("command operator %%%s%% takes no argument", op.name)
	}
	op.get = def.get
	if def.needsArg {
		g, err := def.bind(op.arg)
		if err != nil {
			return nil, fmt.Errorf("command operator %%%s(%s)%%: %w", op.name, op.arg, err)
		}
		op.get = g
	}
	return op, nil
}

// eval returns the operator's value, cut to its :length.
func (op *operator) eval(r *record) value {
	v := op.get(r)
	if op.max > 0 && v.kind == kindString && len(v.s) > op.max {
		v.s = v.s[:op.max]
	}
	return v
}

// appendText writes the template, "-" for an absent value, as Envoy does.
func (t template) appendText(dst []byte, r *record) []byte {
	for _, seg := range t {
		if seg.op == nil {
			dst = append(dst, seg.literal...)
			continue
		}
		dst = seg.op.eval(r).appendText(dst)
	}
	return dst
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
