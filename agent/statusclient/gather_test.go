package statusclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/internal/nettest"
)

func agentStatus(id string, seq uint64, version string, peers ...string) peerproto.Status {
	st := peerproto.Status{AgentID: id, Peers: []peerproto.PeerStatus{}, Subscriptions: []peerproto.SubscriptionStatus{
		{Product: "app", Channel: "stable", InstalledSequence: seq, InstalledVersion: version}}}
	for _, p := range peers {
		st.Peers = append(st.Peers, peerproto.PeerStatus{Addr: p, Source: "static"})
	}
	return st
}

// TestGatherFleet: the local agent lists two live peers, itself, a
// duplicate, a dead address, one that never answers and one of another
// fleet; every one of this fleet is listed once, in order, and the stuck one
// costs one timeout, not a hang.
func TestGatherFleet(t *testing.T) {
	fleet := testFleet(t, 'a')
	b := serve(t, "fleet", statusHandler(agentStatus("b", 1, "1.0")), fleet)
	c := serve(t, "fleet", statusHandler(agentStatus("c", 1, "1.0")), fleet)
	// The stuck agent answers nothing until the test ends, whatever happens
	// to the request (returning when its context ended let the server send
	// an empty 200, which a loaded machine could deliver before the
	// client's timeout fired).
	release := make(chan struct{})
	stuck := serve(t, "fleet", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }), fleet)
	t.Cleanup(func() { close(release) }) // before serve's cleanup closes the server
	dead := nettest.DeadAddr(t)
	var localStatus peerproto.Status // set before the first request: it lists its own address
	local := serve(t, "fleet", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(localStatus)
	}), fleet)
	localStatus = agentStatus("a", 1, "1.0", b, local, c, b, dead, stuck)
	localStatus.Peers = append(localStatus.Peers, peerproto.PeerStatus{Addr: nettest.DeadAddr(t), Foreign: true})

	client := New(fleet)
	// Long enough for a TLS request to a healthy agent on a loaded 2-core
	// machine; the stuck agent costs this once.
	client.Timeout, client.Concurrency = 2*time.Second, 2
	start := time.Now()
	rs, err := GatherFleet(context.Background(), client, local)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*client.Timeout {
		t.Errorf("GatherFleet took %s with a %s timeout", d, client.Timeout)
	}
	want := []struct {
		addr, id string
		err      error
	}{{local, "a", nil}, {b, "b", nil}, {c, "c", nil}, {dead, "", ErrUnreachable}, {stuck, "", ErrTimeout}}
	if len(rs) != len(want) {
		t.Fatalf("GatherFleet returned %d results, want %d: %+v", len(rs), len(want), rs)
	}
	for i, w := range want {
		r := rs[i]
		switch {
		case r.Addr != w.addr:
			t.Errorf("result %d is for %s, want %s", i, r.Addr, w.addr)
		case w.err != nil && !errors.Is(r.Err, w.err):
			t.Errorf("%s: error %v, want %v", r.Addr, r.Err, w.err)
		case w.err == nil && (r.Err != nil || r.Status.AgentID != w.id):
			t.Errorf("%s: status %+v, error %v; want agent %s", r.Addr, r.Status, r.Err, w.id)
		}
	}
	js, err := json.Marshal(rs[3])
	if err != nil || !strings.Contains(string(js), `"error":"no agent answers at `) || strings.Contains(string(js), `"status"`) {
		t.Errorf("unreachable result as JSON: %s (%v)", js, err)
	}
}

func TestGatherFleetLocalDown(t *testing.T) {
	_, err := GatherFleet(context.Background(), New(fleettls.Open()), nettest.DeadAddr(t))
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("GatherFleet of a dead address: %v, want ErrUnreachable", err)
	}
}

func TestSummarize(t *testing.T) {
	updating := agentStatus("u", 6, "1.1.0")
	updating.Subscriptions[0].Progress = &peerproto.Progress{Sequence: 7, OriginBytes: 1_000_000, PeerBytes: 2_000_000, ReusedBytes: 500}
	done := func(id string, origin, peer int64) *Result {
		st := agentStatus(id, 7, "1.2.0")
		st.Subscriptions[0].LastTransfer = &peerproto.Transfer{Origin: origin, Peer: peer, ReusedLocal: 100, Duplicate: 20, Resumed: 3}
		st.Subscriptions = append(st.Subscriptions, peerproto.SubscriptionStatus{Product: "app", Channel: "beta"})
		return &Result{Addr: id, Status: &st}
	}
	down := Result{Addr: "down", Err: ErrUnreachable}
	tests := []struct {
		name    string
		results []Result
		want    []string
	}{
		{"none", nil, nil},
		{"all down", []Result{down}, nil},
		{"no release yet", []Result{{Addr: "x", Status: ptr(agentStatus("x", 0, ""))}},
			[]string{"app/stable: 1 agents, none with a release installed; 0 updating; bytes from origin 0 B, from peers 0 B, reused 0 B"}},
		{"rollout", []Result{*done("a", 33_600_000, 0), {Addr: "u", Status: &updating}, *done("b", 0, 98_700_000), down},
			[]string{
				"app/beta: 2 agents, none with a release installed; 0 updating; bytes from origin 0 B, from peers 0 B, reused 0 B; 1 unreachable",
				"app/stable: 2 of 3 agents on sequence 7 (1.2.0); 1 updating; bytes from origin 33.0 MiB, from peers 96.0 MiB, reused 746 B; 1 unreachable",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Summarize(tt.results)
			if len(got) != len(tt.want) {
				t.Fatalf("Summarize = %v, want %d lines", got, len(tt.want))
			}
			for i, w := range tt.want {
				if got[i].String() != w {
					t.Errorf("line %d:\n got %s\nwant %s", i, got[i], w)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
