package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/swarm"
	"github.com/fleetcast/fleetcast/internal/origintest"
	"github.com/fleetcast/fleetcast/internal/releasetest"
	"github.com/fleetcast/fleetcast/manifest"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsAfterUpdate runs one update cycle of a real agent against an
// origin that serves a chunk corrupt never, once, or on every attempt, and
// reads GET /metrics.
func TestMetricsAfterUpdate(t *testing.T) {
	const retries = 2
	for _, tc := range []struct {
		name         string
		corrupt      int // responses of the last chunk to corrupt
		wantOutcome  peerproto.Outcome
		wantRejected float64
	}{
		{"clean", 0, peerproto.Updated, 0},
		{"corrupt once", 1, peerproto.Updated, 1},
		{"corrupt always", retries + 1, peerproto.Failed, retries + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := origintest.New(t, t.TempDir())
			key := liveKey(t)
			target := filepath.Join(t.TempDir(), "app")
			rel := publishLive(t, o.Dir(), key, 256<<10, target)
			last := rel.m.Chunks[len(rel.m.Chunks)-1]
			o.Break(origintest.Corrupt, tc.corrupt, last.SHA256)
			l := startLiveAgent(t, o.URL(), key, target, func(c *config.Config) { c.Retries = retries })
			st := l.waitStatus(t, "the end of the cycle", cycleDone)
			if st.LastOutcome != tc.wantOutcome {
				t.Fatalf("outcome %q (%s); want %q", st.LastOutcome, st.LastError, tc.wantOutcome)
			}
			mf := l.metrics(t)
			installed, verified, fetched := float64(rel.m.Sequence), float64(len(rel.m.Chunks)), float64(rel.m.Artifact.Size)
			installs := 1.0
			if tc.wantOutcome != peerproto.Updated {
				installed, verified, fetched, installs = 0, verified-1, fetched-float64(last.Size), 0
			}
			sub := map[string]string{"product": "app", "channel": "stable"}
			for _, w := range []struct {
				name   string
				labels map[string]string
				want   float64
			}{
				{"fleetcast_agent_chunk_bytes_total", map[string]string{"source": "origin"}, fetched},
				{"fleetcast_agent_chunk_bytes_total", map[string]string{"source": "peer"}, 0},
				{"fleetcast_agent_chunk_bytes_total", map[string]string{"source": "reused"}, 0},
				{"fleetcast_agent_chunks_verified_total", map[string]string{"source": "origin"}, verified},
				{"fleetcast_agent_chunks_rejected_total", map[string]string{"source": "origin"}, tc.wantRejected},
				{"fleetcast_agent_chunks_rejected_total", map[string]string{"source": "peer"}, 0},
				{"fleetcast_agent_origin_chunks_total", map[string]string{"reason": swarm.ReasonNoPeers}, verified},
				{"fleetcast_agent_origin_chunks_total", map[string]string{"reason": swarm.ReasonAssigned}, 0},
				{"fleetcast_agent_updates_total", map[string]string{"product": "app", "channel": "stable", "outcome": string(tc.wantOutcome)}, 1},
				{"fleetcast_agent_updates_total", map[string]string{"product": "app", "channel": "stable", "outcome": string(peerproto.UpToDate)}, 0},
				{"fleetcast_agent_installed_sequence", sub, installed},
				{"fleetcast_agent_trusted_sequence", sub, float64(rel.m.Sequence)},
				{"fleetcast_agent_update_in_progress", sub, 0},
				{"fleetcast_agent_install_duration_seconds", sub, installs},
				{"fleetcast_agent_fetch_duration_seconds", sub, installs},
				{"fleetcast_agent_peers", nil, 0},
				{"fleetcast_agent_peers_banned", nil, 0},
				{"fleetcast_agent_uploaded_bytes_total", nil, 0},
				{"fleetcast_agent_root_version", nil, 1},
			} {
				if got := metricValue(t, mf, w.name, w.labels); got != w.want {
					t.Errorf("%s%v = %v; want %v", w.name, w.labels, got, w.want)
				}
			}
			if ob := metricValue(t, mf, "fleetcast_agent_origin_response_bytes_total", nil); ob < fetched {
				t.Errorf("origin response bytes %v; want at least the %v chunk bytes", ob, fetched)
			}
			for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
				if mf[name] == nil {
					t.Errorf("no %s: the Go and process collectors are missing", name)
				}
			}
		})
	}
}

// TestMetricsLint checks every metric's name, type and help against the
// Prometheus conventions.
func TestMetricsLint(t *testing.T) {
	o := origintest.New(t, t.TempDir())
	key := liveKey(t)
	target := filepath.Join(t.TempDir(), "app")
	publishLive(t, o.Dir(), key, 64<<10, target)
	l := startLiveAgent(t, o.URL(), key, target, nil)
	l.waitStatus(t, "the end of the cycle", cycleDone)
	mfs, err := l.a.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, metricsPrefix) {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

// TestMetricsPeerChunkRejected fetches a chunk from a peer that sends other
// bytes, with the client the peer manager makes for peers.
func TestMetricsPeerChunkRejected(t *testing.T) {
	src := releasetest.NewSource()
	m := releasetest.Release(t, 1, releasetest.Data(5, 100<<10), src)
	c := m.Chunks[0]
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, c.Size)) // zeros: the right length, not the chunk
	}))
	t.Cleanup(peer.Close)
	cfg := config.Default()
	a := &Agent{cfg: &cfg, log: slog.New(slog.DiscardHandler), fleet: fleettls.Open()}
	a.metrics = newMetrics(nil, &agentCollector{status: a.Status})
	pm := newPeerManager(a.peerOptions(), nil)
	_, err := pm.fetcher(peer.Listener.Addr().String()).Chunk(context.Background(), c, make([]byte, c.Size))
	if !errors.Is(err, manifest.ErrMismatch) {
		t.Fatalf("fetch from a lying peer: %v; want %v", err, manifest.ErrMismatch)
	}
	for source, want := range map[string]float64{"peer": 1, "origin": 0} {
		var d dto.Metric
		if err := a.metrics.rejected.WithLabelValues(source).Write(&d); err != nil {
			t.Fatal(err)
		}
		if got := d.GetCounter().GetValue(); got != want {
			t.Errorf("chunks rejected from %s: %v; want %v", source, got, want)
		}
	}
}

// metrics reads and parses GET /metrics.
func (l *liveAgent) metrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(bytes.NewReader(l.get(t, "/metrics")))
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	return mf
}

// metricValue returns the value of the series of name with exactly these
// labels: a counter's or gauge's value, a histogram's count.
func metricValue(t *testing.T, mf map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	f := mf[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
	for _, m := range f.GetMetric() {
		if !sameLabels(m.GetLabel(), labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func sameLabels(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, l := range got {
		if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
			return false
		}
	}
	return true
}
