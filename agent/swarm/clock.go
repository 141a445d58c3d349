package swarm

import "time"

// Clock is where the scheduler reads the time and waits for it to pass: the
// system's clock, or in tests a fake one that moves only when the test
// advances it (internal/clocktest). Its methods are safe for concurrent use.
//
// The timer is a channel and a stop function rather than a Timer type of
// this package, so that a fake clock needs not import this package, and
// this package's own tests may use it.
type Clock interface {
	Now() time.Time
	// NewTimer sends the time on c once d has passed, unless stop is called
	// first; stop reports whether it stopped the timer. A loop that waits
	// again and again makes a new timer each time.
	NewTimer(d time.Duration) (c <-chan time.Time, stop func() bool)
}

// SystemClock is the system's clock, the one used when Config.Clock is nil.
type SystemClock struct{}

var _ Clock = SystemClock{}

func (SystemClock) Now() time.Time { return time.Now() }

func (SystemClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}
