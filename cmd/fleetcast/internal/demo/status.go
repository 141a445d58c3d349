package demo

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fleetcast/fleetcast/agent/statusclient"
)

// statusTimeout bounds one status request of the demo's live view.
const statusTimeout = 2 * time.Second

// gather reads every agent's status at once, in the order of d.agents.
func (d *demo) gather(ctx context.Context) []statusclient.Result {
	addrs := make([]string, len(d.agents))
	for i, a := range d.agents {
		addrs[i] = a.addr
	}
	return statusclient.Gather(ctx, d.status, addrs)
}

// checkAgentsRunning fails when an agent's process has ended.
func (d *demo) checkAgentsRunning() error {
	for _, a := range d.agents {
		if gone, err := a.exited(); gone {
			return fmt.Errorf("%s stopped unexpectedly (%v); its log: %s", a.name, err, filepath.Join(a.dir, "agent.log"))
		}
	}
	return nil
}

// waitForPeers waits until every agent answers and follows all the others,
// so that they share the origin's chunks from the first one.
func (d *demo) waitForPeers(ctx context.Context) error {
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := d.checkAgentsRunning(); err != nil {
			return err
		}
		if ready, why := peersReady(d.agents, d.gather(ctx)); ready {
			fmt.Fprintf(d.out, "every agent follows its %d peers after %v\n", len(d.agents)-1, time.Since(start).Round(100*time.Millisecond))
			return nil
		} else if ctx.Err() != nil {
			return fmt.Errorf("waiting for the agents to find each other: %s", why)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// peersReady reports whether every agent follows every other, or why not.
func peersReady(agents []*agent, results []statusclient.Result) (bool, string) {
	for i, r := range results {
		if r.Err != nil {
			return false, fmt.Sprintf("%s: %v", agents[i].name, r.Err)
		}
		n := 0
		for _, p := range r.Status.Peers {
			if p.ID != "" && !p.Banned {
				n++
			}
		}
		if n < len(agents)-1 {
			return false, fmt.Sprintf("%s follows %d of %d peers", agents[i].name, n, len(agents)-1)
		}
	}
	return true, ""
}
