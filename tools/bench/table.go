package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// Row labels of the ingest table (stable: scripts and tests look for them).
const (
	RowSource          = "random stream into memory"
	RowRawWrite        = "raw write + fsync (1 MiB writes)"
	RowSHA256          = "SHA-256, one core"
	RowSkyfedRandom    = "skyfed put, random data"
	RowSkyfedFITS      = "skyfed put, FITS frames"
	RowSkyfedPut4      = "skyfed put, 4 streams"
	RowS3Multipart     = "S3 multipart put, 4 streams"
	RowRePut           = "skyfed re-put, renamed, by chunk list"
	RowStoreDefault    = "Object Store put, default sync"
	RowStoreSyncAlways = "Object Store put, sync always"

	RatioStoreDefault    = "skyfed random ÷ Object Store, default sync"
	RatioStoreSyncAlways = "skyfed random ÷ Object Store, sync always"
	RatioRawWrite        = "skyfed random ÷ raw write"
	RatioS3              = "S3 multipart ÷ skyfed put, 4 streams each"
)

// ingestRSSGoal bounds the site's peak RSS above idle during the puts:
// streaming means memory does not grow with object size.
const ingestRSSGoal = 64 << 20

// RowRSSGrowth names the memory goal's line.
const RowRSSGrowth = "site peak RSS above idle"

// Ratio is one comparison of skyfed against a baseline and its goal.
type Ratio struct {
	Name  string
	Value float64 // skyfed's rate ÷ the baseline's
	Goal  float64 // Value must be at least this
}

// Pass reports whether the ratio meets its goal.
func (r Ratio) Pass() bool { return r.Value >= r.Goal }

// Ratios returns skyfed's random-data put against the baselines.
func (r *IngestResult) Ratios() []Ratio {
	sky := r.Random.MBps()
	return []Ratio{
		{Name: RatioStoreDefault, Value: ratio(sky, r.StoreDefault.MBps()), Goal: 1.0},
		{Name: RatioStoreSyncAlways, Value: ratio(sky, r.StoreSyncAlways.MBps()), Goal: 1.0},
		{Name: RatioRawWrite, Value: ratio(sky, r.RawWrite.MBps()), Goal: 0.6},
		{Name: RatioS3, Value: ratio(r.S3Multipart.MBps(), r.Put4.MBps()), Goal: 0.9},
	}
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// WriteTable prints the result as one table with its ratios, goals and
// footnotes.
func (r *IngestResult) WriteTable(w io.Writer) error {
	var sb strings.Builder
	m := r.Machine
	cpu := ""
	if m.CPU != "" {
		cpu = " (" + m.CPU + ")"
	}
	fmt.Fprintf(&sb, "skyfed bench ingest: %s per writer, seed %d\n", ByteSize(r.Size), r.Seed)
	fmt.Fprintf(&sb, "machine:  %d cores%s, %s %s\n", m.Cores, cpu, m.GoVersion, m.Platform)
	if m.LoadStart != "" {
		fmt.Fprintf(&sb, "load:     %s at start, %s at end (1-min load average; above ~0.5 other work skews the rows)\n", m.LoadStart, m.LoadEnd)
	}
	fmt.Fprintf(&sb, "disk dir: %s\n\n", m.Dir)

	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\tMB/s\tseconds\tnotes")
	row := func(label string, mm Measure, note string) {
		fmt.Fprintf(tw, "%s\t%.1f\t%.2f\t%s\n", label, mm.MBps(), mm.Elapsed.Seconds(), note)
	}
	row(RowSource, r.Source, "[1] input of every writer below, no disk")
	row(RowRawWrite, r.RawWrite, "[2] disk baseline")
	row(RowSHA256, r.SHA256, "hashing time only")
	row(RowSkyfedRandom, r.Random.Measure, fmt.Sprintf("[3] %d objects; site RSS idle %s, peak %s",
		r.Random.Objects, ByteSize(r.Random.IdleRSS), ByteSize(r.Random.PeakRSS)))
	f := r.FITS
	row(RowSkyfedFITS, f.Measure, fmt.Sprintf("[4] %d objects (%s); chunks %d unique / %d total; stored/raw %.3f; site RSS peak %s",
		f.Objects, ByteSize(f.Bytes), f.UniqueChunks, f.TotalChunks, ratio(float64(f.StoredBytes), float64(f.RawBytes)), ByteSize(f.PeakRSS)))
	row(RowSkyfedPut4, r.Put4.Measure, fmt.Sprintf("[6] %d objects over HTTP, 4 at once; site RSS peak %s", r.Put4.Objects, ByteSize(r.Put4.PeakRSS)))
	row(RowS3Multipart, r.S3Multipart.Measure, fmt.Sprintf("[6] %d objects, %s parts, 4 parts at once; site RSS peak %s",
		r.S3Multipart.Objects, ByteSize(s3PartSize), ByteSize(r.S3Multipart.PeakRSS)))
	row(RowRePut, r.RePut.Measure, fmt.Sprintf("[7] %d objects put again under new names; chunk bytes moved: %s; %.1f× the skyfed put, random data",
		r.RePut.Objects, ByteSize(r.RePut.MovedBytes), ratio(r.RePut.MBps(), r.Random.MBps())))
	objects := len(randomObjects(r.Size))
	row(RowStoreDefault, r.StoreDefault, fmt.Sprintf("[5] %d objects, 128 KiB chunks, server syncs in background", objects))
	row(RowStoreSyncAlways, r.StoreSyncAlways, fmt.Sprintf("[5] %d objects, 128 KiB chunks, server fsyncs every message", objects))
	fmt.Fprintln(tw, "\t\t\t")
	fmt.Fprintln(tw, "ratio\tvalue\tgoal\tresult")
	for _, rt := range r.Ratios() {
		result := "MISS"
		if rt.Pass() {
			result = "PASS"
		}
		fmt.Fprintf(tw, "%s\t%.2f×\t≥ %.1f×\t%s\n", rt.Name, rt.Value, rt.Goal, result)
	}
	growth := max(r.Random.PeakRSS-r.Random.IdleRSS, r.FITS.PeakRSS-r.Random.IdleRSS, r.Put4.PeakRSS-r.Put4.IdleRSS, r.S3Multipart.PeakRSS-r.S3Multipart.IdleRSS)
	result := "MISS"
	if growth <= ingestRSSGoal {
		result = "PASS"
	}
	fmt.Fprintf(tw, "%s\t%s\t≤ %s\t%s\n", RowRSSGrowth, ByteSize(max(growth, 0)), ByteSize(ingestRSSGoal), result)
	if err := tw.Flush(); err != nil {
		return err
	}
	sb.WriteString(r.footnotes())
	_, err := io.WriteString(w, sb.String())
	return err
}

func (r *IngestResult) footnotes() string {
	frames := r.FITS.Frames
	if r.FITS.Synthetic {
		frames = "SYNTHETIC frames, not real data: " + frames
	}
	notes := []string{
		"MB/s is 10^6 bytes per second. Every writer gets the same bytes: a seeded stream (a 4 MiB ChaCha8 pool, each 64 KiB block the XOR of two pool windows at ChaCha8-drawn offsets: incompressible, no repeated block) generated in the writing client as it writes. The random stream is put as objects of " + ByteSize(RandomObjectSize).String() + " (the last one shorter), into skyfed and the Object Store alike.",
		"Every write starts on a synced file system and its time includes a syncfs(2) of the scratch file system at the end, so each writer pays for making its data durable (skyfed fsyncs its pack files and commits Pebble with sync; the Object Store with default sync leaves that to this sync). Each measurement's data is removed before the next: the disk holds about one copy at a time.",
		"A real site process (this binary, `site run`, fresh data dir in the disk dir), one streamed PUT /o/{name} per object over HTTP on loopback through the skyfed client, which SHA-256s what it sends to check the site's answer, as the nats.go Object Store client SHA-256s its digest.",
		"One frame per object, like a telescope; copy i is base frame i mod N with its sample bits varied (testlab.VaryFrame), so every object is unique content with the statistics of the frames; varying is not timed. Frames: " + frames + ". Chunks from the site's /api/status; stored/raw = bytes on disk ÷ raw bytes of the unique chunks.",
		"JetStream Object Store of an embedded nats-server (in this process, file store in the disk dir), nats.go jetstream client over loopback TCP, the same stream as the same objects in the Object Store's default 128 KiB chunks. Objects stay below the server's 128 MiB stream ingest queue: with sync always, a stock Put of a larger object fails with 429 \"too many requests\" (the client pipelines up to 4000 chunks).",
		"A fresh site process each: the REST row puts the objects 4 at once through the skyfed client, each from its own seeded stream; the S3 row puts the same sizes through the site's S3 API with the AWS SDK for Go v2 (signed requests, its default checksums), each object one multipart upload of 8 MiB parts, 4 part uploads at once across the objects (as aws s3 cp --recursive and rclone run them: an object's parts go while the one before completes); the site hashes each object's SHA-256 from its stored parts in part order while they arrive (the signed payload's SHA-256 and each part's MD5, its ETag, are checked and computed as each part streams in), and completing writes nothing again when parts fall on chunk boundaries.",
		"The random objects written to files and put (untimed), then the same files put under new names one after the other as `skyfed put` of a renamed file does (client.PutFile): the client reads each file for its chunk list and SHA-256 and sends the list; the site, holding every chunk, reads them back once to check the SHA-256 and commits the version. Chunk bytes moved = the site's raw bytes after minus before.",
	}
	var sb strings.Builder
	sb.WriteString("\n")
	for i, n := range notes {
		sb.WriteString(wrap(fmt.Sprintf("[%d] %s", i+1, n), 100, "    "))
	}
	return sb.String()
}

// wrap breaks text into lines of at most width columns (longer words stay
// whole), indenting every line after the first.
func wrap(text string, width int, indent string) string {
	var sb strings.Builder
	col := 0
	for i, w := range strings.Fields(text) {
		n := utf8.RuneCountInString(w)
		switch {
		case i == 0:
		case col+1+n > width:
			sb.WriteString("\n" + indent)
			col = len(indent)
		default:
			sb.WriteByte(' ')
			col++
		}
		sb.WriteString(w)
		col += n
	}
	sb.WriteByte('\n')
	return sb.String()
}
