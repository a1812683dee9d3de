package forward

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descCompressed = prometheus.NewDesc("skyfed_compressed_chunks_total",
		"Compression attempts on chunks put at this site (each chunk is tried once in the whole federation), by pass (background, or ship: a link wanted it first) and outcome (compressed; incompressible: stays raw, marked, never tried again; failed).",
		[]string{"pass", "outcome"}, nil)
	descCompressSeconds = prometheus.NewDesc("skyfed_compress_seconds_total",
		"Wall time spent in the codec compressing chunks (includes waiting for a core on a busy machine).", nil, nil)
	descCompressCPU = prometheus.NewDesc("skyfed_compress_cpu_seconds_total",
		"CPU time spent in the codec compressing chunks (read per thread; Linux only).", nil, nil)
	descCompressRaw = prometheus.NewDesc("skyfed_compress_raw_bytes_total",
		"Raw bytes of the chunks stored compressed here.", nil, nil)
	descCompressStored = prometheus.NewDesc("skyfed_compress_stored_bytes_total",
		"Bytes of those chunks once compressed.", nil, nil)
	descCompressWaits = prometheus.NewDesc("skyfed_compress_waits_total",
		"Ships that waited for a compression another link or the background pass had claimed, instead of compressing again.", nil, nil)
	descDecodedForPeer = prometheus.NewDesc("skyfed_chunks_decoded_for_peer_total",
		"Chunks shipped raw to a peer that does not decode the codec they are stored in.", nil, nil)
	descCompressBacklog = prometheus.NewDesc("skyfed_compress_backlog",
		"Chunk arrivals the background compression pass has not looked at yet.", nil, nil)
)

// compressCollector exports a Stores' compression counters.
type compressCollector struct{ s *Stores }

// CompressCollector returns the Prometheus collector of the compression
// counters (skyfed_compressed_chunks_total and its kin).
func (s *Stores) CompressCollector() prometheus.Collector { return compressCollector{s} }

// Describe implements prometheus.Collector.
func (c compressCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCompressed, descCompressSeconds, descCompressCPU, descCompressRaw, descCompressStored,
		descCompressWaits, descDecodedForPeer, descCompressBacklog} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c compressCollector) Collect(ch chan<- prometheus.Metric) {
	cs := &c.s.compress
	for pass := range cs.attempts {
		for outcome := range cs.attempts[pass] {
			ch <- prometheus.MustNewConstMetric(descCompressed, prometheus.CounterValue,
				float64(cs.attempts[pass][outcome].Load()), passNames[pass], outcomeNames[outcome])
		}
	}
	st := c.s.CompressStats()
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	counter(descCompressSeconds, st.Seconds)
	counter(descCompressCPU, st.CPUSeconds)
	counter(descCompressRaw, float64(st.RawBytes))
	counter(descCompressStored, float64(st.StoredBytes))
	counter(descCompressWaits, float64(st.Waits))
	counter(descDecodedForPeer, float64(st.DecodedForPeer))
	ch <- prometheus.MustNewConstMetric(descCompressBacklog, prometheus.GaugeValue, float64(st.Backlog))
}
