package main

import (
	"github.com/skyfed/skyfed/tools/bench"
)

// BenchCodecCmd is `skyfed bench codec`.
type BenchCodecCmd struct {
	Dir     string         `arg:"" type:"existingdir" help:"Directory searched recursively for FITS files (e.g. Debian's eso-midas-testdata, extracted)."`
	MinSize bench.ByteSize `default:"100000" help:"Smallest file measured, in bytes."`
	Repeat  int            `default:"3" help:"Times each chunk is compressed and decoded; the fastest counts."`
}

// Run measures skyfed's chunk codec on every FITS file under Dir against
// fpack's best lossless mode and zstd -19 in the same run.
func (c *BenchCodecCmd) Run(app *App) error {
	res, err := bench.RunCodec(app.Ctx, bench.CodecConfig{
		Dir: c.Dir, MinSize: int64(c.MinSize), Repeat: c.Repeat, Progress: app.Stderr,
	})
	if err != nil {
		return err
	}
	return res.WriteTable(app.Stdout)
}
