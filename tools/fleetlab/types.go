//go:build linux

package main

import (
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/fleetcast/fleetcast/internal/netlab"
)

// env is the topology every system of one lab run is measured on: one origin
// host and N agent hosts on a shaped bridge, and the artifact they all want.
type env struct {
	lab       *netlab.Lab
	origin    *netlab.Host
	hosts     []*netlab.Host // the agent hosts, in order
	dir       string         // the run's work directory (one filesystem for every host)
	artifact  string         // path of release 1's artifact, served by the origin
	size      int64          // its size in bytes
	originURL string         // base URL of the origin's HTTP server: OriginURL+"/artifact" is the artifact
	rates     rates
	log       *slog.Logger

	srv     *http.Server
	srvRoot *atomic.Pointer[string] // the origin directory served under /
}

// rates are the link rates of the topology, in bits per second.
type rates struct {
	origin   int64 // the origin's upload (the branch office's WAN link)
	upload   int64 // each agent host's upload
	download int64 // each agent host's download
}

// hostResult is what one host of a system did.
type hostResult struct {
	Host        string        `json:"host"`
	Done        time.Duration `json:"done_ns"` // from the system's start to the host having the verified artifact (installed, for fleetcast); 0 if it never did
	Err         string        `json:"error,omitempty"`
	OriginBytes int64         `json:"origin_bytes"` // -1 when the system cannot tell
	PeerBytes   int64         `json:"peer_bytes"`   // -1 when the system cannot tell
	ReusedBytes int64         `json:"reused_bytes"`
	PeakRSS     int64         `json:"peak_rss_bytes"` // of the host's client process (max RSS from rusage)
	CPU         time.Duration `json:"cpu_ns"`         // user + system time of the client process
}

// runResult is one system's run on the lab.
type runResult struct {
	System       string        `json:"system"` // "fleetcast", "curl", "aria2"
	Scenario     string        `json:"scenario"`
	Start        time.Time     `json:"start"`
	Hosts        []hostResult  `json:"hosts"`
	OriginEgress int64         `json:"origin_egress_bytes"`     // counted at the origin's interface during the run
	Problems     []string      `json:"problems,omitempty"`      // what went wrong (bans, failed hosts, corrupt installs)
	Notes        []string      `json:"notes,omitempty"`         // what the scenario did, in figures
	Changed      int64         `json:"changed_bytes,omitempty"` // delta: bytes of the release that changed
	MachineCPU   float64       `json:"machine_cpu"`             // busy fraction of all the machine's cores during the run
	Elapsed      time.Duration `json:"elapsed_ns"`              // until the last host was done, or the run gave up
}
