package statusclient

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/fleetcast/fleetcast/agent/peerproto"
)

// Result is the answer of one agent: its status, or why there is none.
type Result struct {
	Addr   string
	Status *peerproto.Status // nil when Err is set
	Err    error
}

// resultJSON is Result on the wire: {addr, status} or {addr, error}.
type resultJSON struct {
	Addr   string            `json:"addr"`
	Status *peerproto.Status `json:"status,omitempty"`
	Error  string            `json:"error,omitempty"`
}

// MarshalJSON encodes r as {"addr", "status"} or {"addr", "error"}.
func (r Result) MarshalJSON() ([]byte, error) {
	j := resultJSON{Addr: r.Addr, Status: r.Status}
	if r.Err != nil {
		j.Error = r.Err.Error()
	}
	return json.Marshal(j)
}

// Gather fetches the status of every address concurrently, at most
// c.Concurrency requests at a time, each bounded by c.Timeout. Results are
// in the order of addrs; an agent that does not answer has Err set.
func Gather(ctx context.Context, c *Client, addrs []string) []Result {
	n := c.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	out := make([]Result, len(addrs))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = fetchResult(ctx, c, addr)
		})
	}
	wg.Wait()
	return out
}

func fetchResult(ctx context.Context, c *Client, addr string) Result {
	st, err := Fetch(ctx, c, addr)
	if err != nil {
		return Result{Addr: addr, Err: err}
	}
	return Result{Addr: addr, Status: &st}
}

// GatherFleet fetches the status of the agent at addr, then, concurrently,
// of every peer that agent lists, except those it found to be of another
// fleet. The first Result is addr's own; an error means addr itself did not
// answer.
func GatherFleet(ctx context.Context, c *Client, addr string) ([]Result, error) {
	st, err := Fetch(ctx, c, addr)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{addr: true}
	var peers []string
	for _, p := range st.Peers {
		if !seen[p.Addr] && !p.Foreign {
			seen[p.Addr] = true
			peers = append(peers, p.Addr)
		}
	}
	return append([]Result{{Addr: addr, Status: &st}}, Gather(ctx, c, peers)...), nil
}
