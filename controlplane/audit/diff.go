package audit

import (
	"fmt"
	"strings"
)

// contextLines is how many unchanged lines surround each change in a hunk,
// as diff -u prints.
const contextLines = 3

// maxDiffCells bounds the work of the line diff: beyond it, the diff
// replaces the whole text rather than searching for a minimal edit.
const maxDiffCells = 4 << 20

// Unified returns the unified diff that turns before into after, with
// fromName and toName in its header; "" when they are equal. Either text may
// be empty (an object created or deleted).
func Unified(fromName, toName, before, after string) string {
	if before == after {
		return ""
	}
	a, b := splitLines(before), splitLines(after)
	ops := lineDiff(a, b)
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", fromName, toName)
	for _, h := range hunks(ops) {
		writeHunk(&out, ops[h.start:h.end])
	}
	return out.String()
}

func splitLines(s string) []string {
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// edit is one line of the diff: kept (' '), removed ('-') or added ('+'),
// with its 1-based line numbers in a and b (the number it would have had for
// lines absent from that side).
type edit struct {
	op   byte
	line string
	a, b int
}

// lineDiff computes a minimal line edit script by longest common
// subsequence, after stripping the common prefix and suffix.
func lineDiff(a, b []string) []edit {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]

	ops := make([]edit, 0, len(a)+len(b))
	for i := 0; i < pre; i++ {
		ops = append(ops, edit{op: ' ', line: a[i], a: i + 1, b: i + 1})
	}
	ai, bi := pre, pre
	keep := func() { ops = append(ops, edit{op: ' ', line: a[ai], a: ai + 1, b: bi + 1}); ai++; bi++ }
	del := func() { ops = append(ops, edit{op: '-', line: a[ai], a: ai + 1, b: bi + 1}); ai++ }
	add := func() { ops = append(ops, edit{op: '+', line: b[bi], a: ai + 1, b: bi + 1}); bi++ }

	if len(ma)*len(mb) > maxDiffCells {
		for range ma {
			del()
		}
		for range mb {
			add()
		}
	} else {
		// lcs[i][j] is the LCS length of ma[i:] and mb[j:].
		w := len(mb) + 1
		lcs := make([]int32, (len(ma)+1)*w)
		for i := len(ma) - 1; i >= 0; i-- {
			for j := len(mb) - 1; j >= 0; j-- {
				if ma[i] == mb[j] {
					lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
				} else {
					lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
				}
			}
		}
		i, j := 0, 0
		for i < len(ma) || j < len(mb) {
			switch {
			case i < len(ma) && j < len(mb) && ma[i] == mb[j]:
				keep()
				i++
				j++
			case i < len(ma) && (j == len(mb) || lcs[(i+1)*w+j] >= lcs[i*w+j+1]):
				del() // removals before additions, as diff -u prints them
				i++
			default:
				add()
				j++
			}
		}
	}
	for range suf {
		keep()
	}
	return ops
}

type span struct{ start, end int }

// hunks groups changes with their context; changes closer than twice the
// context share a hunk.
func hunks(ops []edit) []span {
	var out []span
	for i := 0; i < len(ops); i++ {
		if ops[i].op == ' ' {
			continue
		}
		start := max(0, i-contextLines)
		end := i
		for end < len(ops) {
			if ops[end].op != ' ' {
				end++
				continue
			}
			// A run of kept lines: does another change follow it closely?
			run := end
			for run < len(ops) && ops[run].op == ' ' {
				run++
			}
			if run < len(ops) && run-end <= 2*contextLines {
				end = run
				continue
			}
			end = min(len(ops), end+contextLines)
			break
		}
		if n := len(out); n > 0 && out[n-1].end >= start {
			out[n-1].end = end
		} else {
			out = append(out, span{start, end})
		}
		i = end - 1
	}
	return out
}

func writeHunk(out *strings.Builder, ops []edit) {
	var na, nb int
	for _, e := range ops {
		if e.op != '+' {
			na++
		}
		if e.op != '-' {
			nb++
		}
	}
	first := ops[0]
	// diff -u numbers an empty range by the line before it.
	sa, sb := first.a, first.b
	if na == 0 {
		sa--
	}
	if nb == 0 {
		sb--
	}
	fmt.Fprintf(out, "@@ -%s +%s @@\n", hunkRange(sa, na), hunkRange(sb, nb))
	for _, e := range ops {
		out.WriteByte(e.op)
		out.WriteString(e.line)
		if !strings.HasSuffix(e.line, "\n") {
			out.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

func hunkRange(start, n int) string {
	if n == 1 {
		return fmt.Sprint(start)
	}
	return fmt.Sprintf("%d,%d", start, n)
}
