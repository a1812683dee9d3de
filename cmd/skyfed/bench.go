package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/skyfed/skyfed/tools/bench"
)

// BenchCmd groups the benchmarks.
type BenchCmd struct {
	CPUProfile string `name:"cpuprofile" type:"path" placeholder:"FILE" help:"Write a CPU profile of the bench's own process to FILE, for 'go tool pprof FILE' (site processes the bench starts are not in it; the sites and servers it runs in-process are)."`

	Ingest    BenchIngestCmd    `cmd:"" help:"Measure ingest on one disk: raw write, SHA-256, skyfed put (random data and FITS frames) and a JetStream Object Store, as one table with ratios and goals."`
	Replicate BenchReplicateCmd `cmd:"" help:"Measure replication over topologies with loops: transfers per chunk per site for offer and flood, control and wire overheads, convergence time, a rate-limited link."`
	Lookup    BenchLookupCmd    `cmd:"" help:"Measure lookups on sites with loops and added link latency: fresh lookups and read-through gets against hops x RTT, and a local lookup."`
	Reconcile BenchReconcileCmd `cmd:"" help:"Measure anti-entropy reconciliation of two inventories of 1M IDs with planted differences: bytes both ways (naming the full IDs included), round trips, CPU and memory per side, against the raw difference and the whole ID list."`
	Heal      BenchHealCmd      `cmd:"" help:"Measure scrub (read, check, re-hash every chunk) against raw reads and SHA-256, and compaction against raw writes with fsync, on a real chunk store."`
	Chaos     BenchChaosCmd     `cmd:"" help:"Run seeded chaos schedules of real site processes (kills, hangs, cuts, blackholes, latency, squeezes, trust and link changes, skewed clocks, a lying peer) and check every acknowledged operation at every site."`
	Codec     BenchCodecCmd     `cmd:"" help:"Measure the chunk codec on the FITS files of a directory, as the put path codes them (FITS layout per chunk), against fpack's best lossless mode and zstd -19 in the same run: bytes per file and in total for integer and float images, compress and decompress MB/s per core."`
	S3        BenchS3Cmd        `cmd:"" name:"s3" help:"Put one large object through a site's S3 API (AWS SDK for Go v2, multipart) and read it back in ranges: MB/s both ways and the site's peak RSS against its idle RSS."`
	Index     BenchIndexCmd     `cmd:"" help:"Measure what a site whose payload lives in a bucket keeps on its node: the Pebble index for N chunks in versions with FITS header values (chunk index, arrival log, manifests, version and find indexes), per million chunks."`
	Find      BenchFindCmd      `cmd:"" help:"Measure find over 1M versions with FITS header values: p50 and p99 of selective queries (keyword, date range, cone, combined) against a scan of every manifest."`
	WAN       BenchWANCmd       `cmd:"" name:"wan" help:"Measure links shaped to a WAN by the lab proxy: a line of site processes at 100 Mbit/s and 100 ms round trip per link against plain TCP through the same proxy and the pipelined bound, and a 1 Mbit/s, 600 ms satellite link that must carry names first."`
}

// BenchIngestCmd is `skyfed bench ingest`.
type BenchIngestCmd struct {
	Size bench.ByteSize `default:"1GiB" help:"Bytes each writer writes (e.g. 1GiB, 256MiB); with --store, the bytes of each large run (4 objects)."`
	Dir  string         `type:"path" help:"Directory on the disk to measure; the bench works in a new subdirectory and removes it (default: under the system temp dir)."`
	FITS string         `name:"fits" type:"path" env:"SKYFED_FITS" help:"Directory of real FITS frames (e.g. extracted from Debian's eso-midas-testdata); synthetic 16-bit frames when unset."`
	// A site on an S3 cluster against the AWS SDK into the same bucket.
	Store     string `help:"Measure a site whose store is this bucket, s3://BUCKET/PREFIX?endpoint=URL&region=R (credentials from the AWS environment or ~/.aws/credentials), against the AWS SDK for Go v2 putting the same bytes into it: large objects 4 at once and --small objects of --small-size, 4 at once, median of --runs."`
	SeaweedFS bool   `name:"seaweedfs" help:"With no --store: start a local SeaweedFS cluster (master, 3 volume servers, filer, S3 gateway; built by scripts/build-seaweedfs) and measure against it."`
	Small     int    `default:"1000" help:"Small objects per run (with --store)."`
	SmallSize int64  `default:"100000" help:"Bytes of each small object (with --store)."`
	Runs      int    `default:"3" help:"Runs of each measurement (with --store); the median is reported."`
}

// Run runs the ingest benchmark with this very binary as the site and
// prints the table on stdout, progress on stderr.
func (c *BenchIngestCmd) Run(app *App) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench ingest: find the skyfed binary to run sites with: %w", err)
	}
	if c.Store != "" || c.SeaweedFS {
		return c.runBucket(app, bin)
	}
	res, err := bench.RunIngest(app.Ctx, bench.IngestConfig{
		Size: c.Size, Dir: c.Dir, FITS: c.FITS, Binary: bin, Progress: app.Stderr,
	})
	if err != nil {
		return err
	}
	return res.WriteTable(app.Stdout)
}

// BenchS3Cmd is `skyfed bench s3`.
type BenchS3Cmd struct {
	Size bench.ByteSize `default:"4GiB" help:"Size of the object put and read back."`
	Dir  string         `type:"path" help:"Directory on the disk to use; the bench works in a new subdirectory and removes it (default: under the system temp dir)."`
}

// Run runs the S3 streaming benchmark with this very binary as the site.
func (c *BenchS3Cmd) Run(app *App) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench s3: find the skyfed binary to run the site with: %w", err)
	}
	res, err := bench.RunS3Stream(app.Ctx, bench.S3StreamConfig{Size: c.Size, Dir: c.Dir, Binary: bin, Progress: app.Stderr})
	if err != nil {
		return err
	}
	return res.WriteTable(app.Stdout)
}

// startCPUProfile starts a CPU profile into path and returns what stops
// it and closes the file.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
