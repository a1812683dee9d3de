package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/skyfed/skyfed/site/client"
	"github.com/skyfed/skyfed/testlab"
)

// Limits of the base frames held in memory for the FITS measurement.
const (
	minFrameBytes   = 1 << 20   // real frames smaller than this are skipped
	maxBaseBytes    = 256 << 20 // stop loading real frames past this
	maxSynthFrames  = 4         // distinct synthetic frames generated
	fitsContentType = "image/fits"
)

// frameSet is the distinct frames the FITS objects are varied from.
type frameSet struct {
	frames    [][]byte
	desc      string
	synthetic bool
}

// loadFrames reads real frames from cfg.FITS (up to the bytes a run needs)
// or generates synthetic ones.
func (b *ingestRun) loadFrames() (*frameSet, error) {
	if b.cfg.FITS == "" {
		return b.syntheticFrames()
	}
	paths, err := testlab.FindFITS(b.cfg.FITS, minFrameBytes)
	if err != nil {
		return nil, fmt.Errorf("%w (point --fits at a directory of real frames, or leave it unset for synthetic ones)", err)
	}
	fs := &frameSet{}
	var loaded int64
	for _, p := range paths {
		if loaded >= min(int64(b.cfg.Size), maxBaseBytes) {
			break
		}
		frame, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read frame: %w", err)
		}
		if _, err := testlab.VaryFrame(frame, 0); err != nil {
			b.progressf("    skipping %s: %v", p, err)
			continue
		}
		fs.frames = append(fs.frames, frame)
		loaded += int64(len(frame))
	}
	if len(fs.frames) == 0 {
		return nil, fmt.Errorf("no usable FITS frames of 1 MiB+ under %s", b.cfg.FITS)
	}
	fs.desc = fmt.Sprintf("%d FITS files (%s) from %s", len(fs.frames), ByteSize(loaded), b.cfg.FITS)
	return fs, nil
}

// syntheticFrames generates enough distinct 16-bit frames for the run.
func (b *ingestRun) syntheticFrames() (*frameSet, error) {
	side := b.cfg.SyntheticSide
	frameBytes := int64(2 * side * side)
	n := int(min(maxSynthFrames, (int64(b.cfg.Size)+frameBytes-1)/frameBytes))
	fs := &frameSet{synthetic: true, desc: fmt.Sprintf("synthetic 16-bit %d×%d frames (no --fits given)", side, side)}
	for i := range n {
		var buf bytes.Buffer
		if err := testlab.WriteSyntheticFrame(&buf, b.cfg.Seed+uint64(i), side, side); err != nil {
			return nil, fmt.Errorf("synthetic frame: %w", err)
		}
		fs.frames = append(fs.frames, buf.Bytes())
	}
	return fs, nil
}

// measureSiteFITS puts frames, one per object, into a fresh site process:
// copy i is base frame i mod N with its samples varied by VaryFrame(i), so
// every object is unique content with the statistics of the real data.
// Objects are put while the total stays within the size (at least one).
// Only the puts and the final sync are timed, not the varying.
func (b *ingestRun) measureSiteFITS(ctx context.Context) (Measure, error) {
	fs, err := b.loadFrames()
	if err != nil {
		return Measure{}, err
	}
	s, err := b.startSite(ctx, "fits")
	if err != nil {
		return Measure{}, err
	}
	out, err := b.putFrames(ctx, s, fs)
	if err == nil {
		err = b.readChunkStats(ctx, s, &out)
	}
	if serr := s.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return Measure{}, err
	}
	out.Synthetic, out.Frames, out.BaseFrames = fs.synthetic, fs.desc, len(fs.frames)
	b.res.FITS = out
	return out.Measure, nil
}

func (b *ingestRun) putFrames(ctx context.Context, s *benchSite, fs *frameSet) (FITSPut, error) {
	var out FITSPut
	if err := s.idleRSS(&out.SitePut); err != nil {
		return out, err
	}
	if err := syncDir(b.scratch); err != nil {
		return out, err
	}
	var putting time.Duration
	for i := 0; ; i++ {
		base := fs.frames[i%len(fs.frames)]
		if i > 0 && out.Bytes+int64(len(base)) > int64(b.cfg.Size) {
			break
		}
		frame, err := testlab.VaryFrame(base, uint64(i))
		if err != nil {
			return out, err
		}
		name := fmt.Sprintf("%s/fits/2026/11/21/frame-%06d.fits", benchDomain, i)
		start := time.Now()
		res, err := s.client.Put(ctx, name, bytes.NewReader(frame), int64(len(frame)), client.PutOptions{ContentType: fitsContentType})
		putting += time.Since(start)
		if err != nil {
			return out, s.wrap(err)
		}
		out.Bytes += res.Size
		out.TotalChunks += int64(res.Chunks)
		out.Objects++
	}
	start := time.Now()
	if err := syncDir(b.scratch); err != nil {
		return out, err
	}
	out.Elapsed = putting + time.Since(start)
	return out, s.peakRSS(&out.SitePut)
}

// readChunkStats reads the site's chunk counts after the puts.
func (b *ingestRun) readChunkStats(ctx context.Context, s *benchSite, out *FITSPut) error {
	st, err := s.client.Status(ctx)
	if err != nil {
		return s.wrap(err)
	}
	out.UniqueChunks, out.StoredBytes, out.RawBytes = st.Chunks, st.StoredBytes, st.RawBytes
	return nil
}
