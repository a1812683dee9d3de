package testlab

import (
	"net"
	"strconv"
	"testing"
)

// Lab ports come from below the kernel's ephemeral range, where no
// outgoing connection can take them between a site's init and its
// (re)start.
func TestFreeAddrsAreBelowTheEphemeralRange(t *testing.T) {
	lo, hi := portsBelowEphemeral()
	addrs, err := freeAddrs(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if port < lo || port >= hi {
			t.Errorf("port %d outside [%d, %d)", port, lo, hi)
		}
		if seen[a] {
			t.Errorf("%s picked twice", a)
		}
		seen[a] = true
	}
}
