package forward

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/forward/recon"
)

// FuzzParseRate checks link rates (skyfed.toml max_rate, --max-rate,
// ?rate= of a scrub): errors wrap ErrBadRate, and every rate that parses
// survives FormatRate and ParseRate unchanged.
func FuzzParseRate(f *testing.F) {
	for _, s := range fuzzRateSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseRate(s)
		if err != nil {
			if !errors.Is(err, ErrBadRate) {
				t.Fatalf("error %v does not wrap ErrBadRate", err)
			}
			return
		}
		if n == 0 {
			return // unlimited
		}
		back, err := ParseRate(FormatRate(n))
		if err != nil || back != n {
			t.Fatalf("ParseRate(%q) = %d, FormatRate gives %q, which parses to %d, %v", s, n, FormatRate(n), back, err)
		}
	})
}

func fuzzRateSeeds() []string {
	return []string{"50MB/s", "10 MiB/s", "1.5 GB/s", "100", "0", "8bit", "0.4", "18446744073709551616", "-1", "1..2", "5 furlongs", ""}
}

// fuzzInventoryHead is a persisted head: fold points and a table head.
func fuzzInventoryHead(folded0, folded1 uint64, t *recon.Table) []byte {
	b := binary.BigEndian.AppendUint64(nil, folded0)
	b = binary.BigEndian.AppendUint64(b, folded1)
	return t.AppendHead(b)
}

// FuzzInventoryLoad feeds the loader of the persisted reconciliation
// table (prefix 'r' of the site's Pebble DB) a fuzzed head and one
// fuzzed key and value in the block range, next to 256 valid blocks:
// it loads or errors, never panics, and a table it loads holds exactly
// what was persisted.
func FuzzInventoryLoad(f *testing.F) {
	for _, s := range fuzzInventorySeeds() {
		f.Add(s.head, s.key, s.value)
	}
	db, err := pebble.Open("/db", &pebble.Options{FS: vfs.NewMem(), Logger: quiet{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	empty := recon.NewTable()
	restore := func(i int) {
		if err := db.Set(blockKey(i), empty.AppendBlock(nil, i), pebble.NoSync); err != nil {
			f.Fatal(err)
		}
	}
	for i := range recon.Blocks {
		restore(i)
	}
	f.Fuzz(func(t *testing.T, head, keySuffix, value []byte) {
		key := append([]byte{prefixRecon, 'b'}, keySuffix...)
		if err := db.Set(headKey, head, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if err := db.Set(key, value, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := db.Delete(key, pebble.NoSync); err != nil {
				t.Fatal(err)
			}
			if len(keySuffix) == 2 {
				if i := int(binary.BigEndian.Uint16(keySuffix)); i < recon.Blocks {
					restore(i)
				}
			}
		}()
		inv := &Inventory{db: db, log: discard, t: recon.NewTable()}
		ok, err := inv.load()
		if err != nil || !ok {
			if ok || err == nil {
				t.Fatalf("load = %v, %v with a head present", ok, err)
			}
			return
		}
		if got := fuzzInventoryHead(inv.folded[0], inv.folded[1], inv.t); !bytes.Equal(got, head) {
			t.Fatalf("loaded head re-encodes to %x, persisted %x", got, head)
		}
		i := int(binary.BigEndian.Uint16(keySuffix))
		if got := inv.t.AppendBlock(nil, i); !bytes.Equal(got, value) {
			t.Fatalf("loaded block %d re-encodes differently", i)
		}
	})
}

type fuzzInventorySeed struct{ head, key, value []byte }

func fuzzInventorySeeds() []fuzzInventorySeed {
	tab := recon.NewTable()
	var id [32]byte
	for i := range 20 {
		id[0], id[1] = byte(i), byte(i>>8)
		tab.Toggle(byte(i%2), id, true)
	}
	head := fuzzInventoryHead(7, 9, tab)
	block3 := tab.AppendBlock(nil, 3)
	return []fuzzInventorySeed{
		{head, []byte{0, 3}, block3},
		{fuzzInventoryHead(0, 0, recon.NewTable()), []byte{0, 0}, recon.NewTable().AppendBlock(nil, 0)},
		{head[:15], []byte{0, 1}, block3},
		{head, []byte{1, 0}, block3},      // block 256: out of range
		{head, []byte{0, 3, 0}, block3},   // a key of the wrong length
		{head, []byte{0, 3}, block3[:40]}, // a truncated block
	}
}
