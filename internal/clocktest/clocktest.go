// Package clocktest is a clock for tests: its time moves only when the test
// advances it, and its timers fire then. It implements swarm.Clock without
// importing agent/swarm (whose own tests use it), and wraps
// github.com/jonboulle/clockwork, so that no test imports that. Test code
// only.
package clocktest

import (
	"context"
	"time"

	"github.com/jonboulle/clockwork"
)

// Clock is a fake clock. Its methods are safe for concurrent use.
type Clock struct {
	fc *clockwork.FakeClock
}

// New returns a clock that reads t until it is advanced.
func New(t time.Time) *Clock {
	return &Clock{fc: clockwork.NewFakeClockAt(t)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return c.fc.Now() }

// NewTimer starts a timer that sends the clock's time on ch once Advance
// has moved the clock d or more; stop removes it, and reports whether it
// had not fired yet.
func (c *Clock) NewTimer(d time.Duration) (ch <-chan time.Time, stop func() bool) {
	t := c.fc.NewTimer(d)
	return t.Chan(), t.Stop
}

// Advance moves the clock d forward, and fires, in the order of their
// deadlines, the timers due by then before it returns.
func (c *Clock) Advance(d time.Duration) { c.fc.Advance(d) }

// BlockUntil waits until at least n timers are running (made and neither
// fired nor stopped), or ctx is done: with code that stops its timer as
// soon as it wakes, that many goroutines are waiting on the clock.
func (c *Clock) BlockUntil(ctx context.Context, n int) error {
	return c.fc.BlockUntilContext(ctx, n)
}
