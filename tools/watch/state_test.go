package watch

import (
	"bytes"
	"errors"
	"testing"
)

var stateRecords = []*Record{
	{Size: 0, MTime: 0, Status: StatusPutting, Name: "gloria.eu/a"},
	{Size: 200 << 20, MTime: 1796579540704000000, SHA256: sumA, Name: "gloria.eu/bootes-2/2026/11/21/img-0001.fits",
		Version: "1796579540704.0000.alpha", Manifest: "b1e7c6524c6fa5387eee805da99a3e20ca4118d70aef5b764f84b5368ab7bcda", Status: StatusConfirmed, Sites: 3},
	{Size: 1, MTime: -5, Status: StatusDeleted, Name: "x/é", Version: "v", Sites: 1},
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range stateRecords {
		got, err := DecodeRecord(r.Encode())
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if *got != *r {
			t.Errorf("decoded %+v, want %+v", got, r)
		}
	}
}

func TestRecordRefused(t *testing.T) {
	good := stateRecords[1].Encode()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version 2": append([]byte{2}, good[1:]...),
		"status 0":  append([]byte{1, 0}, good[2:]...),
		"status 5":  append([]byte{1, 5}, good[2:]...),
		"truncated": good[:len(good)-3],
		"trailing":  append(append([]byte{}, good...), 0),
		"long name": append([]byte{1, 1, 0, 0}, append(make([]byte, 32), 0xff, 0xff, 0x03)...),
	} {
		if _, err := DecodeRecord(b); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: %v, want ErrBadRecord", name, err)
		}
	}
}

// FuzzDecodeRecord: a state record either is refused or decodes to the
// one value that encodes back to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range stateRecords {
		f.Add(r.Encode())
	}
	f.Add([]byte{1, 2, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v does not wrap ErrBadRecord", err)
			}
			return
		}
		if enc := r.Encode(); !bytes.Equal(enc, b) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", b, r, enc)
		}
	})
}

// FuzzParseEvents: any read from an inotify descriptor parses without
// panicking, into events whose names hold no NUL.
func FuzzParseEvents(f *testing.F) {
	ev := func(wd, mask uint32, name string, pad int) []byte {
		b := []byte{byte(wd), 0, 0, 0, byte(mask), byte(mask >> 8), 0, 0, 0, 0, 0, 0, byte(len(name) + pad), 0, 0, 0}
		return append(append(b, name...), make([]byte, pad)...)
	}
	f.Add(ev(1, 8, "img-0001.fits", 3))
	f.Add(append(ev(1, 0x100, "", 0), ev(2, 0x80, "a", 15)...))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, _ := parseEvents(b)
		for _, e := range evs {
			if bytes.IndexByte([]byte(e.name), 0) >= 0 {
				t.Fatalf("event name %q holds a NUL", e.name)
			}
		}
	})
}

func TestStatePersists(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenState(dir); !errors.Is(err, ErrLocked) {
		t.Errorf("a second watcher opening the same state: %v, want ErrLocked", err)
	}
	for i, r := range stateRecords {
		if err := st.Put(string(rune('a'+i))+"/f.fits", r); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Delete("a/f.fits"); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var paths []string
	if err := st.Paths(func(rel string) error { paths = append(paths, rel); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 || paths[0] != "b/f.fits" || paths[1] != "c/f.fits" {
		t.Errorf("paths after reopening: %q", paths)
	}
	if r, err := st.Get("b/f.fits"); err != nil || r == nil || *r != *stateRecords[1] {
		t.Errorf("b/f.fits after reopening: %+v, %v", r, err)
	}
	if r, err := st.Get("a/f.fits"); err != nil || r != nil {
		t.Errorf("a deleted record: %+v, %v", r, err)
	}
}
