package watch

import "github.com/prometheus/client_golang/prometheus"

// metrics are the watcher's skyfed_watch_* series.
type metrics struct {
	seen, put, deleted, errors, bytes prometheus.Counter
	pending                           prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "skyfed_watch_" + name, Help: help})
	}
	m := &metrics{
		seen:    c("files_seen_total", "Files found new or changed and complete (each size and mtime once)."),
		put:     c("files_put_total", "Files put as a new version."),
		deleted: c("files_deleted_total", "Files removed after --delete-after-sites sites held their version."),
		errors:  c("errors_total", "Failures (site unreachable, file unreadable, state write), each retried."),
		bytes:   c("bytes_put_total", "Bytes of the files put."),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "skyfed_watch_files_pending",
			Help: "Files waiting: to be complete, to be put again after a failure, or for enough sites to hold them."}),
	}
	for _, col := range []prometheus.Collector{m.seen, m.put, m.deleted, m.errors, m.bytes, m.pending} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}
