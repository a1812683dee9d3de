package site

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// healCollector exposes the scrub and gc totals.
type healCollector struct{ h *healing }

var (
	descScrubRuns    = prometheus.NewDesc("skyfed_scrub_runs_total", "Scrub passes completed, by result: clean (nothing left unrepairable) or unclean.", []string{"result"}, nil)
	descScrubChunks  = prometheus.NewDesc("skyfed_scrub_chunks_total", "Chunks read and re-hashed by scrubs.", nil, nil)
	descScrubBytes   = prometheus.NewDesc("skyfed_scrub_bytes_total", "Raw bytes read and re-hashed by scrubs.", nil, nil)
	descScrubCorrupt = prometheus.NewDesc("skyfed_scrub_corrupt_chunks_total", "Chunks scrubs found failing their hash or record check.", nil, nil)
	descScrubMissing = prometheus.NewDesc("skyfed_scrub_missing_chunks_total", "Chunks of complete versions scrubs found missing here.", nil, nil)
	descScrubLast    = prometheus.NewDesc("skyfed_scrub_last_completed_timestamp_seconds", "When the last scrub pass completed (0: none since start).", nil, nil)
	descGCRuns       = prometheus.NewDesc("skyfed_gc_runs_total", "Garbage collections completed.", nil, nil)
	descGCVersions   = prometheus.NewDesc("skyfed_gc_versions_collected_total", "Hidden versions garbage-collected (past gc_grace).", nil, nil)
	descGCChunks     = prometheus.NewDesc("skyfed_gc_chunks_collected_total", "Chunks garbage-collected (no kept version used them).", nil, nil)
	descGCReclaimed  = prometheus.NewDesc("skyfed_gc_reclaimed_bytes_total", "Pack file bytes given back to the disk by garbage collection.", nil, nil)
	descGCLast       = prometheus.NewDesc("skyfed_gc_last_completed_timestamp_seconds", "When the last garbage collection completed (0: none since start).", nil, nil)
)

// Describe implements prometheus.Collector.
func (c healCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descScrubRuns, descScrubChunks, descScrubBytes, descScrubCorrupt, descScrubMissing, descScrubLast,
		descGCRuns, descGCVersions, descGCChunks, descGCReclaimed, descGCLast} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c healCollector) Collect(ch chan<- prometheus.Metric) {
	c.h.mu.Lock()
	t := c.h.totals
	c.h.mu.Unlock()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	stamp := func(d *prometheus.Desc, at time.Time) {
		v := 0.0
		if !at.IsZero() {
			v = float64(at.Unix())
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(descScrubRuns, t.scrubRuns-t.scrubUnclean, "clean")
	counter(descScrubRuns, t.scrubUnclean, "unclean")
	counter(descScrubChunks, t.scrubChunks)
	counter(descScrubBytes, t.scrubBytes)
	counter(descScrubCorrupt, t.scrubCorrupt)
	counter(descScrubMissing, t.scrubMissing)
	stamp(descScrubLast, t.scrubDoneAt)
	counter(descGCRuns, t.gcRuns)
	counter(descGCVersions, t.gcVersions)
	counter(descGCChunks, t.gcChunks)
	counter(descGCReclaimed, t.gcReclaimed)
	stamp(descGCLast, t.gcDoneAt)
}
