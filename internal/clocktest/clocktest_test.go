package clocktest

import (
	"context"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := New(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Fatalf("Now = %v, want %v", got, t0)
	}
	ch, _ := c.NewTimer(time.Second)
	_, stop := c.NewTimer(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.BlockUntil(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if !stop() {
		t.Error("stop of a running timer = false, want true")
	}
	c.Advance(time.Second - 1)
	select {
	case <-ch:
		t.Fatal("timer fired before its time")
	default:
	}
	c.Advance(1)
	select {
	case got := <-ch:
		if want := t0.Add(time.Second); !got.Equal(want) {
			t.Errorf("timer sent %v, want %v", got, want)
		}
	default:
		t.Fatal("timer did not fire at its time")
	}
	if got, want := c.Now(), t0.Add(time.Second); !got.Equal(want) {
		t.Errorf("Now = %v after advancing, want %v", got, want)
	}
}
