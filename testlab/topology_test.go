package testlab_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/skyfed/skyfed/testlab"
)

var topologyCases = []struct {
	name    string
	n       int
	edges   int
	loops   int
	degrees []int // nil: not checked
}{
	{"line", 1, 0, 0, []int{0}},
	{"line", 5, 4, 0, []int{1, 2, 2, 2, 1}},
	{"ring", 3, 3, 1, []int{2, 2, 2}},
	{"ring", 5, 5, 1, []int{2, 2, 2, 2, 2}},
	{"star", 5, 4, 0, []int{4, 1, 1, 1, 1}},
	{"mesh", 4, 6, 3, []int{3, 3, 3, 3}},
	{"mesh", 5, 10, 6, []int{4, 4, 4, 4, 4}},
	{"ring-chords", 4, 5, 2, []int{3, 2, 3, 2}},
	{"ring-chords", 5, 8, 4, []int{3, 3, 4, 2, 4}},
	{"ring-chords", 6, 9, 4, []int{4, 2, 4, 2, 4, 2}},
	{"cube", 8, 12, 5, []int{3, 3, 3, 3, 3, 3, 3, 3}},
	{"random", 3, 3, 1, nil},
	{"random", 8, 11, 4, nil},
	{"random", 12, 17, 6, nil},
}

func TestTopology(t *testing.T) {
	for _, tc := range topologyCases {
		t.Run(fmt.Sprintf("%s-%d", tc.name, tc.n), func(t *testing.T) {
			edges, err := testlab.Topology(tc.name, tc.n, 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := testlab.CheckTopology(tc.n, edges); err != nil {
				t.Fatalf("%v: %v", edges, err)
			}
			if len(edges) != tc.edges {
				t.Errorf("%d links %v, want %d", len(edges), edges, tc.edges)
			}
			if got := testlab.Loops(tc.n, edges); got != tc.loops {
				t.Errorf("%d independent loops, want %d", got, tc.loops)
			}
			if d := testlab.Degrees(tc.n, edges); tc.degrees != nil && !slices.Equal(d, tc.degrees) {
				t.Errorf("degrees %v, want %v (links %v)", d, tc.degrees, edges)
			}
		})
	}
}

// TestRingChordsLoopLengths checks that ring-chords has loops of several
// lengths: a triangle through a chord as well as the whole ring.
func TestRingChordsLoopLengths(t *testing.T) {
	edges, err := testlab.Topology("ring-chords", 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	linked := func(i, j int) bool {
		return slices.Contains(edges, [2]int{i, j}) || slices.Contains(edges, [2]int{j, i})
	}
	if !linked(0, 1) || !linked(1, 2) || !linked(0, 2) {
		t.Errorf("no triangle 0-1-2 in %v", edges)
	}
	if !linked(0, 2) || !linked(2, 3) || !linked(3, 4) || !linked(4, 0) {
		t.Errorf("no 4-loop 0-2-3-4 in %v", edges)
	}
	for i := range 5 {
		if !linked(i, (i+1)%5) {
			t.Errorf("ring link %d-%d missing in %v", i, (i+1)%5, edges)
		}
	}
}

func TestTopologyRandomIsSeeded(t *testing.T) {
	a, err := testlab.Topology("random", 10, 42)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := testlab.Topology("random", 10, 42)
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different graphs:\n%v\n%v", a, b)
	}
	differ := false
	for seed := int64(0); seed < 5 && !differ; seed++ {
		c, _ := testlab.Topology("random", 10, seed)
		differ = !slices.Equal(a, c)
	}
	if !differ {
		t.Error("five other seeds all gave the graph of seed 42")
	}
}

// TestTopologyAlwaysValid builds every topology over a range of sizes and
// seeds and checks each is a valid connected graph.
func TestTopologyAlwaysValid(t *testing.T) {
	for _, name := range testlab.Topologies {
		for n := 1; n <= 12; n++ {
			for seed := range int64(20) {
				edges, err := testlab.Topology(name, n, seed)
				if errors.Is(err, testlab.ErrBadTopology) {
					continue // sizes the graph does not come in
				}
				if err != nil {
					t.Fatalf("%s-%d: %v", name, n, err)
				}
				if err := testlab.CheckTopology(n, edges); err != nil {
					t.Fatalf("%s-%d seed %d: %v: %v", name, n, seed, edges, err)
				}
				if name == "random" && testlab.Loops(n, edges) < 1 {
					t.Fatalf("random-%d seed %d has no loop: %v", n, seed, edges)
				}
			}
		}
	}
}

func TestTopologyErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
	}{
		{"torus", 5}, {"", 3}, {"line", 0}, {"mesh", -1}, {"ring", 2},
		{"ring-chords", 3}, {"cube", 7}, {"cube", 9}, {"random", 2},
	} {
		t.Run(fmt.Sprintf("%s-%d", tc.name, tc.n), func(t *testing.T) {
			edges, err := testlab.Topology(tc.name, tc.n, 1)
			if !errors.Is(err, testlab.ErrBadTopology) {
				t.Errorf("got %v, %v; want ErrBadTopology", edges, err)
			}
		})
	}
}

func TestCheckTopologyRefuses(t *testing.T) {
	for _, tc := range []struct {
		what  string
		n     int
		edges [][2]int
	}{
		{"out of range", 3, [][2]int{{0, 1}, {1, 3}}},
		{"negative", 3, [][2]int{{0, 1}, {-1, 2}}},
		{"self link", 3, [][2]int{{0, 1}, {1, 2}, {2, 2}}},
		{"twice", 3, [][2]int{{0, 1}, {1, 2}, {2, 1}}},
		{"disconnected", 4, [][2]int{{0, 1}, {2, 3}}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			if err := testlab.CheckTopology(tc.n, tc.edges); !errors.Is(err, testlab.ErrBadTopology) {
				t.Errorf("got %v, want ErrBadTopology", err)
			}
		})
	}
}
