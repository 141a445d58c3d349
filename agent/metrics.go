package agent

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/agent/swarm"
	"github.com/fleetcast/fleetcast/manifest"
)

// metricsPrefix starts the name of every metric of the agent's own
// (docs/METRICS.md lists them).
const metricsPrefix = "fleetcast_agent_"

// Label values known in advance, so that every series exists from the
// start at 0 and rate() sees its first increase.
var (
	chunkSources  = []string{swarm.SourceOrigin, swarm.SourcePeer, swarm.SourceReused}
	originReasons = []string{swarm.ReasonNoPeers, swarm.ReasonAssigned, swarm.ReasonPeerStalled, swarm.ReasonPeersFailed, swarm.ReasonNoHolder, swarm.ReasonWaited}
	outcomes      = []peerproto.Outcome{peerproto.UpToDate, peerproto.Updated, peerproto.KnownBad, peerproto.Failed, peerproto.HealthFailed, peerproto.Refused, peerproto.Deferred}
)

// metrics is one agent's Prometheus registry and the instruments the
// update cycle and the assembly feed; the rest is read at scrape time by
// agentCollector. Not the default registry: a process may run several
// agents (tests do). A nil *metrics records nothing. Safe for concurrent use.
type metrics struct {
	reg          *prometheus.Registry
	bytes        *prometheus.CounterVec   // source
	verified     *prometheus.CounterVec   // source
	rejected     *prometheus.CounterVec   // source
	originChunks *prometheus.CounterVec   // reason
	updates      *prometheus.CounterVec   // product, channel, outcome
	fetchSecs    *prometheus.HistogramVec // product, channel
	installSecs  *prometheus.HistogramVec // product, channel
}

// newMetrics makes the registry of an agent that follows subs; state
// reports what is read at scrape time.
func newMetrics(subs []manifest.ChannelID, state prometheus.Collector) *metrics {
	sub := []string{"product", "channel"}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricsPrefix + "chunk_bytes_total",
			Help: "Bytes of the artifacts assembled, by source: origin, peer, reused (copied from the store or resumed)."}, []string{"source"}),
		verified: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricsPrefix + "chunks_verified_total",
			Help: "Chunks that matched their SHA-256 and were stored, by source."}, []string{"source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricsPrefix + "chunks_rejected_total",
			Help: "Chunks that failed their SHA-256 check, by source."}, []string{"source"}),
		originChunks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricsPrefix + "origin_chunks_total",
			Help: "Chunks fetched from the origin, by why they were not fetched from a peer."}, []string{"reason"}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricsPrefix + "updates_total",
			Help: "Update cycles, by subscription and outcome."}, []string{"product", "channel", "outcome"}),
		fetchSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metricsPrefix + "fetch_duration_seconds",
			Help:    "Time to assemble and verify a release's artifact, for assemblies that succeeded.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16)}, sub),
		installSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metricsPrefix + "install_duration_seconds",
			Help:    "Time to install a release, health check and any rollback included, whatever the result.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)}, sub),
	}
	m.reg.MustRegister(m.bytes, m.verified, m.rejected, m.originChunks, m.updates, m.fetchSecs, m.installSecs,
		state, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.preset(subs)
	return m
}

// preset creates every series whose labels are known in advance.
func (m *metrics) preset(subs []manifest.ChannelID) {
	for _, s := range chunkSources {
		m.bytes.WithLabelValues(s)
		m.verified.WithLabelValues(s)
		m.rejected.WithLabelValues(s)
	}
	for _, r := range originReasons {
		m.originChunks.WithLabelValues(r)
	}
	for _, s := range subs {
		for _, o := range outcomes {
			m.updates.WithLabelValues(s.Product, s.Channel, string(o))
		}
		m.fetchSecs.WithLabelValues(s.Product, s.Channel)
		m.installSecs.WithLabelValues(s.Product, s.Channel)
	}
}

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler(log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)})
}

func (m *metrics) ChunkBytes(source string, n int64) {
	if m != nil && n > 0 {
		m.bytes.WithLabelValues(source).Add(float64(n))
	}
}

func (m *metrics) ChunkVerified(source string, size int64) {
	if m != nil {
		m.verified.WithLabelValues(source).Inc()
		m.ChunkBytes(source, size)
	}
}

func (m *metrics) ChunkRejected(source string) {
	if m != nil {
		m.rejected.WithLabelValues(source).Inc()
	}
}

func (m *metrics) OriginChunk(reason string) {
	if m != nil {
		m.originChunks.WithLabelValues(reason).Inc()
	}
}

func (m *metrics) cycle(s manifest.ChannelID, out peerproto.Outcome) {
	if m != nil {
		m.updates.WithLabelValues(s.Product, s.Channel, string(out)).Inc()
	}
}

func (m *metrics) fetchTime(s manifest.ChannelID, seconds float64) {
	if m != nil {
		m.fetchSecs.WithLabelValues(s.Product, s.Channel).Observe(seconds)
	}
}

func (m *metrics) installTime(s manifest.ChannelID, seconds float64) {
	if m != nil {
		m.installSecs.WithLabelValues(s.Product, s.Channel).Observe(seconds)
	}
}

// agentCollector reads, at each scrape, what the agent keeps elsewhere:
// the peers, the subscriptions' state files, the upload and origin
// counters.
type agentCollector struct {
	channels []*channel
	status   func() peerproto.Status // the peers and the counters, as GET /v1/status has them
}

var (
	descPeers = prometheus.NewDesc(metricsPrefix+"peers",
		"Peers known (listed by discovery or configured), this agent excluded.", nil, nil)
	descPeersBanned = prometheus.NewDesc(metricsPrefix+"peers_banned",
		"Peers banned now, for a bad chunk or a lying state.", nil, nil)
	descInstalled = prometheus.NewDesc(metricsPrefix+"installed_sequence",
		"Sequence of the release installed and healthy; 0: none.", []string{"product", "channel"}, nil)
	descTrusted = prometheus.NewDesc(metricsPrefix+"trusted_sequence",
		"Highest sequence verified for the channel (rollback protection).", []string{"product", "channel"}, nil)
	descInProgress = prometheus.NewDesc(metricsPrefix+"update_in_progress",
		"1 while a release is being fetched or installed for the subscription.", []string{"product", "channel"}, nil)
	descUploaded = prometheus.NewDesc(metricsPrefix+"uploaded_bytes_total",
		"Chunk bytes served to peers.", nil, nil)
	descUploadedChunks = prometheus.NewDesc(metricsPrefix+"uploaded_chunks_total",
		"Chunks served to peers in full.", nil, nil)
	descOriginBytes = prometheus.NewDesc(metricsPrefix+"origin_response_bytes_total",
		"Response body bytes received from the origin: chunks, manifests, roots, failed attempts included.", nil, nil)
	descRootVersion = prometheus.NewDesc(metricsPrefix+"root_version",
		"Version of the trust root in use.", nil, nil)
)

func (c *agentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPeers, descPeersBanned, descInstalled, descTrusted, descInProgress,
		descUploaded, descUploadedChunks, descOriginBytes, descRootVersion} {
		ch <- d
	}
}

func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	c.collectPeers(ch, st.Peers)
	for _, sub := range c.channels {
		collectChannel(ch, sub)
	}
	ch <- prometheus.MustNewConstMetric(descUploaded, prometheus.CounterValue, float64(st.UploadedBytes))
	ch <- prometheus.MustNewConstMetric(descUploadedChunks, prometheus.CounterValue, float64(st.UploadedChunks))
	ch <- prometheus.MustNewConstMetric(descOriginBytes, prometheus.CounterValue, float64(st.OriginBytes))
	ch <- prometheus.MustNewConstMetric(descRootVersion, prometheus.GaugeValue, float64(st.RootVersion))
}

// collectChannel reports whether sub has an update in progress and the
// sequences installed and trusted, as its state file was last read or
// written.
func collectChannel(ch chan<- prometheus.Metric, sub *channel) {
	in := 0.0
	if sub.updating() {
		in = 1
	}
	ch <- prometheus.MustNewConstMetric(descInProgress, prometheus.GaugeValue, in, sub.id.Product, sub.id.Channel)
	st, err := sub.loaded()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descInstalled, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descInstalled, prometheus.GaugeValue, float64(st.Installed), sub.id.Product, sub.id.Channel)
	ch <- prometheus.MustNewConstMetric(descTrusted, prometheus.GaugeValue, float64(st.Trusted), sub.id.Product, sub.id.Channel)
}

// collectPeers counts the peers as GET /v1/status lists them.
func (c *agentCollector) collectPeers(ch chan<- prometheus.Metric, peers []peerproto.PeerStatus) {
	banned := 0
	for _, p := range peers {
		if p.Banned {
			banned++
		}
	}
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(len(peers)))
	ch <- prometheus.MustNewConstMetric(descPeersBanned, prometheus.GaugeValue, float64(banned))
}
