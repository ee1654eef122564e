package decode

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxSuggestDistance is how far, in edits, a misspelt name may be from the
// name it is taken for.
const maxSuggestDistance = 2

// closest returns the candidate nearest to name, ignoring case, when one is
// within maxSuggestDistance edits and closer than name is long; else "".
func closest(name string, candidates []string) string {
	lower, length := strings.ToLower(name), utf8.RuneCountInString(name)
	best, bestDist := "", maxSuggestDistance+1
	for _, c := range candidates {
		if abs(utf8.RuneCountInString(c)-length) >= bestDist {
			continue // the distance is at least the difference in length
		}
		if dist := editDistance(lower, strings.ToLower(c)); dist < bestDist && dist < length {
			best, bestDist = c, dist
		}
	}
	return best
}

func didYouMean(name string) string {
	if name == "" {
		return ""
	}
	return "; did you mean " + strconv.Quote(name) + "?"
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// maxQuoted is how much of a value error messages repeat.
const maxQuoted = 64

// quote quotes s for an error message, cutting long values short so that a
// hostile input cannot make the message huge.
func quote(s string) string {
	if len(s) > maxQuoted {
		return strconv.Quote(truncate(s, maxQuoted)) + "..."
	}
	return strconv.Quote(s)
}

// clip is quote for values printed bare, such as numbers.
func clip(s string) string {
	if len(s) > maxQuoted {
		return truncate(s, maxQuoted) + "..."
	}
	return s
}

// truncate cuts s to at most n bytes without splitting a rune.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
