package main

import (
	"fmt"
	"os"
	"time"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/tools/bench"
)

// BenchWANCmd is `skyfed bench wan`.
type BenchWANCmd struct {
	Size       bench.ByteSize `default:"1GB" help:"Random bytes put at the line's first site (e.g. 1GB, 256MB)."`
	ObjectSize bench.ByteSize `default:"64MiB" name:"object-size" help:"Size of each object put."`
	Sites      int            `default:"3" help:"Sites on the line."`
	Rate       string         `default:"100Mbit/s" help:"Rate of each link of the line, shaped by the lab proxy."`
	RTT        time.Duration  `default:"100ms" name:"rtt" help:"Round trip of each link of the line (half of it added each way by the proxy)."`
	SatRate    string         `default:"1Mbit/s" name:"sat-rate" help:"Rate of the satellite link."`
	SatRTT     time.Duration  `default:"600ms" name:"sat-rtt" help:"Round trip of the satellite link."`
	SatSize    bench.ByteSize `default:"8MiB" name:"sat-size" help:"Bulk bytes sent over the satellite link."`
	NoSat      bool           `name:"no-sat" help:"Skip the satellite link."`
	Dir        string         `type:"path" help:"Scratch directory (default: under the system temp dir)."`
	Binary     string         `type:"path" help:"The skyfed binary the sites run (default: this one), to compare two builds."`
}

// Run runs the WAN benchmark with this very binary as the sites and
// prints the table with its goal lines on stdout, progress on stderr.
func (c *BenchWANCmd) Run(app *App) error {
	bin := c.Binary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return fmt.Errorf("bench wan: find the skyfed binary to run sites with: %w", err)
		}
	}
	rate, err := linkRate(c.Rate)
	if err != nil {
		return fmt.Errorf("bench wan: --rate: %w", err)
	}
	satRate, err := linkRate(c.SatRate)
	if err != nil {
		return fmt.Errorf("bench wan: --sat-rate: %w", err)
	}
	res, err := bench.RunWAN(app.Ctx, bench.WANConfig{
		Size: c.Size, ObjectSize: c.ObjectSize, Sites: c.Sites, Rate: rate, RTT: c.RTT,
		SatRate: satRate, SatRTT: c.SatRTT, SatSize: c.SatSize, NoSat: c.NoSat,
		Binary: bin, Dir: c.Dir, Progress: app.Stderr,
	})
	if err != nil {
		return err
	}
	return res.WriteTable(app.Stdout)
}

// linkRate parses a link rate that must be set (not 0, unlimited).
func linkRate(s string) (uint64, error) {
	r, err := forward.ParseRate(s)
	if err == nil && r == 0 {
		err = fmt.Errorf("%w: %q: a shaped link needs a rate", forward.ErrBadRate, s)
	}
	return r, err
}
