package site

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the site-wide Prometheus metrics; link metrics live with links.
type metrics struct {
	requests     *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	ingestBytes  prometheus.Counter
	ingestObjs   prometheus.Counter
	servedBytes  prometheus.Counter
	putSeconds   prometheus.Histogram
	lookupSecond prometheus.Histogram
	fedLookup    prometheus.Histogram
	incomplete   prometheus.Counter
	fetched      prometheus.Counter
	bodyTimeouts prometheus.Counter
	access       *accessMetrics // skyfed_http_denied_total (access_http.go)
	s3Denied     *prometheus.CounterVec
	s3Puts       prometheus.Counter
	// Hashmap puts (hashmap.go): versions made from a chunk list, and
	// chunks sent for them that were new here.
	hashmapPuts, hashmapChunks prometheus.Counter
	findSeconds                prometheus.Histogram // GET /find (find.go)
}

func newMetrics(reg prometheus.Registerer, s *Site) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skyfed_http_requests_total", Help: "HTTP requests by operation and status code.",
		}, []string{"op", "code"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skyfed_rejected_total", Help: "Inputs refused, by reason.",
		}, []string{"reason"}),
		ingestBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skyfed_ingest_bytes_total", Help: "Object bytes put at this site.",
		}),
		ingestObjs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skyfed_ingest_versions_total", Help: "Versions (puts and deletes) created at this site.",
		}),
		servedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skyfed_served_bytes_total", Help: "Object and chunk bytes served over HTTP.",
		}),
		putSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "skyfed_put_duration_seconds", Help: "Time to store one put, from first byte to durable.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		lookupSecond: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "skyfed_lookup_duration_seconds", Help: "Time to resolve a name to a version locally.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10),
		}),
	}
	m.fedLookup = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "skyfed_federation_lookup_duration_seconds", Help: "Time of lookups asked across the federation.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	m.incomplete = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skyfed_federation_lookups_incomplete_total", Help: "Lookups asked across the federation that ended (at their deadline) before every reached site answered; the newest version heard of was used.",
	})
	m.fetched = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skyfed_fetched_chunks_total", Help: "Chunks a read had to wait for and fetch through the links (read-through), apart from replication.",
	})
	m.bodyTimeouts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skyfed_http_body_timeouts_total", Help: "Requests whose body stalled longer than http_body_idle_timeout between two reads; answered 408 and dropped.",
	})
	m.access = newAccessMetrics(reg)
	m.s3Denied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "skyfed_s3_denied_total", Help: "S3 requests refused before the protocol: by S3 error code (SignatureDoesNotMatch for wrong signatures and unknown keys alike, AccessDenied for scope).",
	}, []string{"code"})
	m.s3Puts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skyfed_s3_puts_total", Help: "Objects put through the S3 API (also counted in skyfed_ingest_*).",
	})
	reg.MustRegister(m.s3Denied, m.s3Puts)
	m.hashmapPuts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skyfed_hashmap_puts_total", Help: "Versions made from a chunk list (PUT /o/{name}?hashmap), whose bytes were here already or sent as missing chunks (also counted in skyfed_ingest_objects_total).",
	})
	m.hashmapChunks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skyfed_hashmap_chunks_total", Help: "Chunks sent with PUT /c/{id} that were new here (their bytes count in skyfed_ingest_bytes_total).",
	})
	m.findSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "skyfed_find_duration_seconds", Help: "Time to answer one page of GET /find (header value queries).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	})
	reg.MustRegister(m.hashmapPuts, m.hashmapChunks, m.findSeconds)
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "skyfed_fits_headers_total", Help: "Puts of FITS objects whose header keywords (fits_keywords) went into the manifest as fits.* meta.",
		}, func() float64 { n, _ := s.objects.FITSCounts(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "skyfed_fits_headers_skipped_total", Help: "Puts of FITS objects whose header could not be read: stored without fits.* meta.",
		}, func() float64 { _, n := s.objects.FITSCounts(); return float64(n) }),
	)
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(s.stores.CompressCollector())
	reg.MustRegister(m.fedLookup, m.incomplete, m.fetched, m.bodyTimeouts, m.requests, m.rejected, m.ingestBytes, m.ingestObjs, m.servedBytes, m.putSeconds, m.lookupSecond,
		gauge("skyfed_stored_chunks", "Unique chunks stored.", func() float64 { return float64(s.chunks.Stats().Chunks) }),
		gauge("skyfed_stored_bytes", "Chunk payload bytes on disk (after dedup and compression).", func() float64 { return float64(s.chunks.Stats().StoredBytes) }),
		gauge("skyfed_raw_bytes", "Raw bytes of the unique chunks stored.", func() float64 { return float64(s.chunks.Stats().RawBytes) }),
		gauge("skyfed_versions", "Versions indexed (tombstones included).", func() float64 { return float64(s.objects.Versions()) }),
		gauge("skyfed_incomplete_versions", "Versions indexed here whose chunks are not all here yet (exact; names arrive before bytes).", func() float64 { v, _ := s.objects.Incomplete(); return float64(v) }),
		gauge("skyfed_incomplete_bytes", "Bytes of those versions not readable here yet (their missing chunks, once per occurrence).", func() float64 { _, b := s.objects.Incomplete(); return float64(b) }),
		gauge("skyfed_stored_objects", "Objects (names whose latest version is live), as /api/status counts them.", func() float64 { return float64(s.objectCount()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "skyfed_chunk_corrupt_reads_total", Help: "Chunk reads that failed hash verification (never served).",
		}, func() float64 { return float64(s.chunks.Stats().CorruptReads) }),
	)
	return m
}

// objectCountTTL bounds how often the object count (a scan of the names)
// is recomputed for scrapes.
const objectCountTTL = 5 * time.Second

// objectCount returns the number of live objects, recomputed at most
// every objectCountTTL.
func (s *Site) objectCount() int64 {
	s.countMu.Lock()
	defer s.countMu.Unlock()
	if time.Since(s.countAt) > objectCountTTL {
		n, err := s.objects.Objects()
		if err != nil {
			s.log.Error("count objects", "err", err)
			return s.count
		}
		s.count, s.countAt = n, time.Now()
	}
	return s.count
}
