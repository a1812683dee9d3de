package site_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/skyfed/skyfed/site"
)

// FuzzConfigFields loads skyfed.toml files that are well-formed TOML
// with fuzzed values in every field that LoadConfig validates (ids,
// domains, addresses, chunk size, durations, rates, modes, peer keys,
// link URLs, disk_reserve, public prefixes), so the fuzzer spends its
// time in the validators rather than in the TOML syntax (FuzzLoadConfig
// in fuzz_test.go fuzzes the raw file). LoadConfig never panics, every
// error wraps site.ErrBadConfig, and a config that loads saves and
// loads again to the same values.
func FuzzConfigFields(f *testing.F) {
	f.Add("alpha", "gloria.eu", "127.0.0.1:7401", "127.0.0.1:7402", int64(64<<10), "24h", "50MB/s", "offer",
		"beta", "ed25519:"+strings.Repeat("ab", 32), "nats://10.0.0.2:7402", "2%", "gloria.eu/pub/")
	f.Add("alpha", "gloria.eu", ":7401", ":7402", int64(4<<20), "7d", "0", "flood",
		"beta", "ed25519:"+strings.Repeat("AB", 32), "tls://peer.example:7402", "10GB", "")
	f.Add("Alpha", "gloria..eu", "x", "", int64(-1), "-1h", "fast", "push", "alpha", "ed25519:zz", "http://x", "200%", "/")
	f.Add("a", "a", "[::1]:0", "[::1]:99999", int64(1<<40), "1d12h", "1.5GB/s", "", "", "", "", "", "gloria.eu")
	dir := f.TempDir()
	again := f.TempDir()
	f.Fuzz(func(t *testing.T, id, domain, httpAddr, natsAddr string, chunkSize int64, dur, rate, mode, peer, key, url, reserve, public string) {
		q := strconv.Quote
		toml := "id = " + q(id) + "\ndomain = " + q(domain) + "\nhttp = " + q(httpAddr) + "\nnats = " + q(natsAddr) +
			"\nchunk_size = " + strconv.FormatInt(chunkSize, 10) +
			"\nreconcile_interval = " + q(dur) + "\nscrub_interval = " + q(dur) + "\nscrub_rate = " + q(rate) +
			"\ngc_grace = " + q(dur) + "\ngc_interval = " + q(dur) + "\nhttp_body_idle_timeout = " + q(dur) +
			"\ndisk_reserve = " + q(reserve) + "\npublic = [" + q(public) + "]\n" +
			"\n[[peer]]\nid = " + q(peer) + "\nkey = " + q(key) + "\ndomains = [" + q(domain) + "]\n" +
			"\n[[link]]\npeer = " + q(peer) + "\nurl = " + q(url) + "\nmax_rate = " + q(rate) + "\nmode = " + q(mode) + "\n"
		if err := os.WriteFile(filepath.Join(dir, site.ConfigFile), []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := site.LoadConfig(dir)
		if err != nil {
			if !errors.Is(err, site.ErrBadConfig) {
				t.Fatalf("error %v does not wrap ErrBadConfig\n%s", err, toml)
			}
			return
		}
		if err := site.SaveConfig(again, c); err != nil {
			t.Fatalf("a config that loaded does not save: %v\n%s", err, toml)
		}
		c2, err := site.LoadConfig(again)
		if err != nil {
			saved, _ := os.ReadFile(filepath.Join(again, site.ConfigFile))
			t.Fatalf("a saved config does not load: %v\n%s", err, saved)
		}
		if c2.ID != c.ID || c2.Domain != c.Domain || c2.ChunkSize != c.ChunkSize || len(c2.Peers) != len(c.Peers) || len(c2.Links) != len(c.Links) ||
			c2.DiskReserve != c.DiskReserve || c2.ScrubRate != c.ScrubRate {
			t.Fatalf("save and load changed the config:\n%+v\n%+v", c, c2)
		}
	})
}
