package testlab

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
)

// ErrBadTopology reports a topology name or size that cannot be built.
var ErrBadTopology = errors.New("bad topology")

// Topologies lists the names Topology knows.
var Topologies = []string{"line", "ring", "star", "mesh", "ring-chords", "cube", "random"}

// Topology returns the links of a named graph over n sites as pairs
// [i, j]: site i dials site j. Every pair of sites is linked at most once
// and the graph is connected. The graphs:
//
//	line         0–1–2–…–(n-1)
//	ring         a line closed by (n-1)–0 (n ≥ 3)
//	star         every site i > 0 dials the hub 0
//	mesh         every pair, the lower index dialing
//	ring-chords  a ring plus chords i→i+2 (mod n) from every even i, so
//	             loops of lengths 3, 4, … n (n ≥ 4)
//	cube         the 3-cube: i and j linked when they differ in one bit (n = 8)
//	random       a random spanning tree plus n/2 (at least 1) extra links,
//	             so it has loops (n ≥ 3); the same seed gives the same graph
func Topology(name string, n int, seed int64) ([][2]int, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: %s of %d sites: need at least 1", ErrBadTopology, name, n)
	}
	least := map[string]int{"ring": 3, "ring-chords": 4, "random": 3}[name]
	if n < least {
		return nil, fmt.Errorf("%w: %s needs at least %d sites, not %d", ErrBadTopology, name, least, n)
	}
	switch name {
	case "line":
		return lineEdges(n), nil
	case "ring":
		return ringEdges(n), nil
	case "star":
		var es [][2]int
		for i := 1; i < n; i++ {
			es = append(es, [2]int{i, 0})
		}
		return es, nil
	case "mesh":
		var es [][2]int
		for i := range n {
			for j := i + 1; j < n; j++ {
				es = append(es, [2]int{i, j})
			}
		}
		return es, nil
	case "ring-chords":
		return ringChordEdges(n), nil
	case "cube":
		return cubeEdges(n)
	case "random":
		return randomEdges(n, seed), nil
	}
	return nil, fmt.Errorf("%w: unknown topology %q (known: %s)", ErrBadTopology, name, strings.Join(Topologies, ", "))
}

func lineEdges(n int) [][2]int {
	var es [][2]int
	for i := 0; i+1 < n; i++ {
		es = append(es, [2]int{i, i + 1})
	}
	return es
}

func ringEdges(n int) [][2]int {
	return append(lineEdges(n), [2]int{n - 1, 0})
}

func ringChordEdges(n int) [][2]int {
	es := ringEdges(n)
	g := newGraph(n, es)
	for i := 0; i < n; i += 2 {
		j := (i + 2) % n
		if !g.linked(i, j) {
			es = append(es, [2]int{i, j})
			g.add(i, j)
		}
	}
	return es
}

func cubeEdges(n int) ([][2]int, error) {
	if n != 8 {
		return nil, fmt.Errorf("%w: cube needs exactly 8 sites, not %d", ErrBadTopology, n)
	}
	var es [][2]int
	for i := range n {
		for bit := 1; bit < n; bit <<= 1 {
			if j := i ^ bit; j > i {
				es = append(es, [2]int{i, j})
			}
		}
	}
	return es, nil
}

// randomEdges builds a random spanning tree (each site dials one earlier
// site), then adds extra links between unlinked pairs, which close loops.
func randomEdges(n int, seed int64) [][2]int {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x70b0))
	var es [][2]int
	g := newGraph(n, nil)
	for i := 1; i < n; i++ {
		j := rng.IntN(i)
		es = append(es, [2]int{i, j})
		g.add(i, j)
	}
	extra := max(1, n/2)
	maxEdges := n * (n - 1) / 2
	for added := 0; added < extra && len(es) < maxEdges; {
		i, j := rng.IntN(n), rng.IntN(n)
		if i == j || g.linked(i, j) {
			continue
		}
		es = append(es, [2]int{i, j})
		g.add(i, j)
		added++
	}
	return es
}

// graph is an adjacency set, for building and checking topologies.
type graph struct {
	n   int
	adj []map[int]bool
}

func newGraph(n int, es [][2]int) *graph {
	g := &graph{n: n, adj: make([]map[int]bool, n)}
	for i := range g.adj {
		g.adj[i] = map[int]bool{}
	}
	for _, e := range es {
		g.add(e[0], e[1])
	}
	return g
}

func (g *graph) add(i, j int)         { g.adj[i][j], g.adj[j][i] = true, true }
func (g *graph) linked(i, j int) bool { return g.adj[i][j] }

// connected reports whether every site is reachable from site 0.
func (g *graph) connected() bool {
	if g.n == 0 {
		return true
	}
	seen := map[int]bool{0: true}
	queue := []int{0}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for j := range g.adj[i] {
			if !seen[j] {
				seen[j] = true
				queue = append(queue, j)
			}
		}
	}
	return len(seen) == g.n
}

// CheckTopology reports the first problem of edges as a topology over n
// sites: an index out of range, a site linked to itself, a pair linked
// twice (in either direction) or a graph that is not connected.
func CheckTopology(n int, edges [][2]int) error {
	g := newGraph(n, nil)
	for _, e := range edges {
		i, j := e[0], e[1]
		switch {
		case i < 0 || j < 0 || i >= n || j >= n:
			return fmt.Errorf("%w: link %d→%d outside 0..%d", ErrBadTopology, i, j, n-1)
		case i == j:
			return fmt.Errorf("%w: site %d linked to itself", ErrBadTopology, i)
		case g.linked(i, j):
			return fmt.Errorf("%w: sites %d and %d linked twice", ErrBadTopology, i, j)
		}
		g.add(i, j)
	}
	if !g.connected() {
		return fmt.Errorf("%w: not connected", ErrBadTopology)
	}
	return nil
}

// Degrees returns how many links each of n sites has.
func Degrees(n int, edges [][2]int) []int {
	d := make([]int, n)
	for _, e := range edges {
		d[e[0]]++
		d[e[1]]++
	}
	return d
}

// Loops returns the number of independent loops of a connected graph
// (its cycle rank: links − sites + 1).
func Loops(n int, edges [][2]int) int {
	return max(0, len(edges)-n+1)
}
