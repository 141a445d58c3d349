package demo

import (
	"errors"
	"testing"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/statusclient"
)

// TestPeersReady wants every agent to follow all the others, not counting
// banned peers and peers that have not said who they are.
func TestPeersReady(t *testing.T) {
	agents := []*agent{{name: "agent1"}, {name: "agent2"}, {name: "agent3"}}
	follows := func(peers ...peerproto.PeerStatus) statusclient.Result {
		return statusclient.Result{Status: &peerproto.Status{Peers: peers}}
	}
	a, b := peerproto.PeerStatus{ID: "a"}, peerproto.PeerStatus{ID: "b"}
	for _, tc := range []struct {
		name    string
		results []statusclient.Result
		want    string // "" when ready
	}{
		{"ready", []statusclient.Result{follows(a, b), follows(a, b), follows(a, b)}, ""},
		{"no answer", []statusclient.Result{follows(a, b), {Err: errors.New("connection refused")}, follows(a, b)},
			"agent2: connection refused"},
		{"one peer", []statusclient.Result{follows(a, b), follows(a, b), follows(a)}, "agent3 follows 1 of 2 peers"},
		{"banned", []statusclient.Result{follows(a, peerproto.PeerStatus{ID: "b", Banned: true}), follows(a, b), follows(a, b)},
			"agent1 follows 1 of 2 peers"},
		{"unknown id", []statusclient.Result{follows(a, b), follows(a, peerproto.PeerStatus{Addr: "127.0.0.1:1"}), follows(a, b)},
			"agent2 follows 1 of 2 peers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready, why := peersReady(agents, tc.results)
			if ready != (tc.want == "") || why != tc.want {
				t.Errorf("peersReady = %v, %q; want %q", ready, why, tc.want)
			}
		})
	}
}
