package discovery

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunWithoutInterface runs mDNS on an interface that does not exist:
// one warning, quiet retries, static peers still served, nil on cancel.
func TestRunWithoutInterface(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Interface = "fcnosuchif0"
	cfg.BrowseInterval = 100 * time.Millisecond
	cfg.Static = []string{"10.0.0.9:7000"}
	log, buf := logBuffer()
	d, err := New(cfg, self, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	waitFor(t, "three failed browses", 10*time.Second, func() bool {
		return strings.Count(buf.String(), "mDNS still unavailable") >= 2
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v; want nil", err)
	}
	out := buf.String()
	if n := strings.Count(out, "level=WARN"); n != 1 || !strings.Contains(out, "fcnosuchif0") {
		t.Fatalf("%d warnings in log; want one naming the interface:\n%s", n, out)
	}
	if got := addrs(d.Peers()); got != "10.0.0.9:7000" {
		t.Fatalf("Peers = %s; want the static peer", got)
	}
}

func TestReportMDNS(t *testing.T) {
	log, buf := logBuffer()
	d, err := New(testConfig(newClock()), self, log)
	if err != nil {
		t.Fatal(err)
	}
	fail := errors.New("no multicast route")
	for _, err := range []error{fail, fail, nil, nil, fail, nil} {
		d.reportMDNS(err)
	}
	out := buf.String()
	if n := strings.Count(out, "level=WARN"); n != 1 || !strings.Contains(out, "no multicast route") {
		t.Errorf("%d warnings; want one with the reason:\n%s", n, out)
	}
	if n := strings.Count(out, `msg="mDNS available"`); n != 2 {
		t.Errorf("%d recoveries logged; want 2:\n%s", n, out)
	}
}
