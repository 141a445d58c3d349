package benchrun

import (
	"fmt"
	"slices"
	"time"
)

// Median returns the median of key over ms, the upper of the two middle
// values when there is an even number of them. ms must not be empty.
func Median[S any](ms []S, key func(S) time.Duration) time.Duration {
	v := make([]time.Duration, len(ms))
	for i, m := range ms {
		v[i] = key(m)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// Peak returns the largest of key over ms (the peak RSS of any run), 0
// when ms is empty.
func Peak[S any](ms []S, key func(S) int64) int64 {
	var p int64
	for _, m := range ms {
		p = max(p, key(m))
	}
	return p
}

// MiB formats n bytes in MiB with one decimal ("64.0 MiB"), or as "n/a"
// when n is 0, a peak RSS that was not measured.
func MiB(n int64) string {
	if n == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
