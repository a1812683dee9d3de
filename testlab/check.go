package testlab

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/site"
)

// ErrNotConverged is wrapped by the convergence checks' difference reports.
var ErrNotConverged = errors.New("not converged")

// Inventory is what one site holds, as the convergence checks compare it.
type Inventory struct {
	Site string
	// Chunks and Manifests hold the stored IDs; nil when only counted
	// (sites checked over HTTP).
	Chunks     map[chunk.ID]bool
	Manifests  map[chunk.ID]bool
	ChunkCount int64
	// Versions maps every name to all its versions held (version order).
	Versions map[string][]string
	// Latest maps every live name to its latest version.
	Latest map[string]string
}

// listPage is how many names one List call returns.
const listPage = 1000

// SiteInventory reads the inventory of an in-process site from its stores.
func SiteInventory(s *site.Site) (Inventory, error) {
	inv := Inventory{Site: s.Config().ID, Chunks: map[chunk.ID]bool{}, Manifests: map[chunk.ID]bool{},
		Versions: map[string][]string{}, Latest: map[string]string{}}
	err := s.Chunks().ForEach(func(id chunk.ID) error {
		inv.Chunks[id] = true
		return nil
	})
	if err != nil {
		return inv, fmt.Errorf("inventory of %s: chunks: %w", inv.Site, err)
	}
	inv.ChunkCount = int64(len(inv.Chunks))
	err = s.Objects().ForEachManifest(func(id chunk.ID) error {
		m, err := s.Objects().Manifest(id)
		if err != nil {
			return err
		}
		inv.Manifests[id] = true
		inv.Versions[m.Name] = append(inv.Versions[m.Name], m.Version())
		return nil
	})
	if err != nil {
		return inv, fmt.Errorf("inventory of %s: manifests: %w", inv.Site, err)
	}
	for _, vs := range inv.Versions {
		slices.Sort(vs)
	}
	after := ""
	for {
		page, more, err := s.Objects().List("", after, listPage)
		if err != nil {
			return inv, fmt.Errorf("inventory of %s: list: %w", inv.Site, err)
		}
		for _, m := range page {
			inv.Latest[m.Name] = m.Version()
		}
		if !more {
			return inv, nil
		}
		after = page[len(page)-1].Name
	}
}

// Compare reports nil when every inventory holds everything any of them
// holds (chunks, manifests, versions), all agree on the latest version of
// every name, and everything in puts is there; else an error wrapping
// ErrNotConverged that lists the differences.
func Compare(invs []Inventory, puts []Object) error {
	var d diffs
	d.expected(invs, puts)
	d.sets("chunks", invs, func(inv Inventory) map[chunk.ID]bool { return inv.Chunks })
	d.sets("manifests", invs, func(inv Inventory) map[chunk.ID]bool { return inv.Manifests })
	d.counts(invs)
	d.versions(invs)
	d.latest(invs)
	return d.err()
}

// diffs collects the differences found.
type diffs struct{ lines []string }

func (d *diffs) add(format string, args ...any) {
	d.lines = append(d.lines, fmt.Sprintf(format, args...))
}

const maxDiffLines = 12

func (d *diffs) err() error {
	if len(d.lines) == 0 {
		return nil
	}
	lines := d.lines
	if len(lines) > maxDiffLines {
		lines = append(lines[:maxDiffLines:maxDiffLines], fmt.Sprintf("… and %d more", len(d.lines)-maxDiffLines))
	}
	return fmt.Errorf("%w: %s", ErrNotConverged, strings.Join(lines, "; "))
}

// expected checks that every put's manifest, version and chunks are at
// every site that lists such things.
func (d *diffs) expected(invs []Inventory, puts []Object) {
	for _, inv := range invs {
		var lackChunks, lackVersions []string
		for _, o := range puts {
			lacks := inv.Versions != nil && !slices.Contains(inv.Versions[o.Name], o.Version) ||
				inv.Manifests != nil && !o.Manifest.IsZero() && !inv.Manifests[o.Manifest]
			if lacks {
				lackVersions = append(lackVersions, o.Name+"@"+o.Version)
			}
			if inv.Chunks == nil {
				continue
			}
			for _, id := range o.Chunks {
				if !inv.Chunks[id] {
					lackChunks = append(lackChunks, id.Short())
				}
			}
		}
		if len(lackVersions) > 0 {
			d.add("%s lacks %d put versions (%s)", inv.Site, len(lackVersions), examples(lackVersions))
		}
		if len(lackChunks) > 0 {
			d.add("%s lacks %d chunks of puts (%s)", inv.Site, len(dedupe(lackChunks)), examples(dedupe(lackChunks)))
		}
	}
}

// sets checks that every inventory holds the union of one kind of IDs.
func (d *diffs) sets(what string, invs []Inventory, of func(Inventory) map[chunk.ID]bool) {
	union := map[chunk.ID]bool{}
	for _, inv := range invs {
		for id := range of(inv) {
			union[id] = true
		}
	}
	for _, inv := range invs {
		set := of(inv)
		if set == nil {
			continue
		}
		var lack []string
		for id := range union {
			if !set[id] {
				lack = append(lack, id.Short())
			}
		}
		if len(lack) > 0 {
			sort.Strings(lack)
			d.add("%s lacks %d of %d %s held elsewhere (%s)", inv.Site, len(lack), len(union), what, examples(lack))
		}
	}
}

// counts checks that every site stores as many chunks.
func (d *diffs) counts(invs []Inventory) {
	same := true
	parts := make([]string, len(invs))
	for i, inv := range invs {
		parts[i] = fmt.Sprintf("%s %d", inv.Site, inv.ChunkCount)
		same = same && inv.ChunkCount == invs[0].ChunkCount
	}
	if !same {
		d.add("chunk counts differ: %s", strings.Join(parts, ", "))
	}
}

// versions checks that every site holds every version of every name.
func (d *diffs) versions(invs []Inventory) {
	union := map[string]bool{}
	for _, inv := range invs {
		for name, vs := range inv.Versions {
			for _, v := range vs {
				union[name+"@"+v] = true
			}
		}
	}
	for _, inv := range invs {
		if inv.Versions == nil {
			continue
		}
		var lack []string
		for nv := range union {
			name, v, _ := strings.Cut(nv, "@")
			if !slices.Contains(inv.Versions[name], v) {
				lack = append(lack, nv)
			}
		}
		if len(lack) > 0 {
			sort.Strings(lack)
			d.add("%s lacks %d versions held elsewhere (%s)", inv.Site, len(lack), examples(lack))
		}
	}
}

// latest checks that all sites agree on the latest version of each name.
func (d *diffs) latest(invs []Inventory) {
	names := map[string]bool{}
	for _, inv := range invs {
		for name := range inv.Latest {
			names[name] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for name := range names {
		sorted = append(sorted, name)
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		same := true
		parts := make([]string, len(invs))
		for i, inv := range invs {
			v, ok := inv.Latest[name]
			if !ok {
				v = "none"
			}
			parts[i] = inv.Site + " " + v
			same = same && ok && v == invs[0].Latest[name]
		}
		if !same {
			d.add("latest of %s differs: %s", name, strings.Join(parts, ", "))
		}
	}
}

func examples(items []string) string {
	const show = 3
	if len(items) <= show {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:show], ", ") + ", …"
}

func dedupe(items []string) []string {
	out := slices.Clone(items)
	slices.Sort(out)
	return slices.Compact(out)
}

// sampleNames picks up to k names of latest, spread over their sorted
// order (first, last, between), the same for every call.
func sampleNames(latest map[string]string, k int) []string {
	names := make([]string, 0, len(latest))
	for name := range latest {
		names = append(names, name)
	}
	sort.Strings(names)
	if len(names) <= k || k < 2 {
		return names[:min(k, len(names))]
	}
	var out []string
	for i := range k {
		out = append(out, names[i*(len(names)-1)/(k-1)])
	}
	return slices.Compact(out)
}
