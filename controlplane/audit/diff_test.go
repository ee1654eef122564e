package audit

import (
	"strings"
	"testing"
)

func lines(n int, edit map[int]string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if s, ok := edit[i]; ok {
			if s != "" {
				b.WriteString(s + "\n")
			}
			continue
		}
		b.WriteString(strings.Repeat("l", 1) + itoa(i) + "\n")
	}
	return b.String()
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// The expected outputs are what GNU diff -u prints for the same inputs.
func TestUnified(t *testing.T) {
	for _, tc := range []struct {
		name, a, b, want string
	}{{
		name: "equal", a: "x\n", b: "x\n", want: "",
	}, {
		name: "created", a: "", b: "a\nb\n",
		want: "--- a\n+++ b\n@@ -0,0 +1,2 @@\n+a\n+b\n",
	}, {
		name: "deleted", a: "a\nb\n", b: "",
		want: "--- a\n+++ b\n@@ -1,2 +0,0 @@\n-a\n-b\n",
	}, {
		name: "two hunks and a removed line",
		a:    lines(30, nil),
		b:    lines(30, map[int]string{5: "five", 20: "twenty", 25: ""}),
		want: `--- a
+++ b
@@ -2,7 +2,7 @@
 l2
 l3
 l4
-l5
+five
 l6
 l7
 l8
@@ -17,12 +17,11 @@
 l17
 l18
 l19
-l20
+twenty
 l21
 l22
 l23
 l24
-l25
 l26
 l27
 l28
`,
	}, {
		name: "no newline at end",
		a:    "a\nb", b: "a\nc",
		want: "--- a\n+++ b\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Unified("a", "b", tc.a, tc.b); got != tc.want {
				t.Errorf("Unified:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// Beyond maxDiffCells the diff replaces the changed middle whole, which is
// still a correct diff; the common prefix and suffix stay context.
func TestUnifiedLargeInputStaysBounded(t *testing.T) {
	a := lines(3000, nil)
	b := lines(3000, map[int]string{2: "second", 2999: "penultimate"})
	got := Unified("a", "b", a, b)
	if !strings.HasPrefix(got, "--- a\n+++ b\n@@ -1,3000 +1,3000 @@\n l1\n-l2\n-l3\n") {
		t.Errorf("diff starts:\n%.200s", got)
	}
	if !strings.HasSuffix(got, "+penultimate\n l3000\n") {
		t.Errorf("diff ends:\n%s", got[len(got)-200:])
	}
	if n := strings.Count(got, "\n-"); n != 2998 {
		t.Errorf("%d removed lines, want 2998 (the whole middle)", n)
	}
}
