package chunk

import (
	"bytes"
	"errors"
	"hash/crc32"
	"testing"
)

var entryCases = []struct {
	name string
	e    entry
	ok   bool
}{
	{"raw", entry{pack: 1, offset: 0, storedLen: 10, rawLen: 10, codec: CodecRaw}, true},
	{"zstd", entry{pack: 7, offset: 1 << 40, storedLen: 100, rawLen: MaxSize, codec: CodecZstd}, true},
	{"shuffle", entry{pack: 1<<32 - 1, offset: 53, storedLen: 0, rawLen: 0, codec: CodecZstdShuffle16}, true},
	{"fits", entry{pack: 2, offset: 9, storedLen: 5, rawLen: 100, codec: CodecFITS}, true},
	{"unknown codec", entry{pack: 1, storedLen: 1, rawLen: 1, codec: CodecFITS + 1}, false},
	{"raw length mismatch", entry{pack: 1, storedLen: 1, rawLen: 2, codec: CodecRaw}, false},
	{"too large", entry{pack: 1, storedLen: 1, rawLen: MaxSize + 1, codec: CodecZstd}, false},
	{"negative offset", entry{pack: 1, offset: -1, codec: CodecRaw}, false},
}

func TestIndexEntryRoundTrip(t *testing.T) {
	for _, tc := range entryCases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.e.appendTo(nil)
			if len(b) != entrySize {
				t.Fatalf("encoded %d bytes, want %d", len(b), entrySize)
			}
			got, err := decodeEntry(b)
			if !tc.ok {
				if !errors.Is(err, errBadEntry) {
					t.Fatalf("decodeEntry error = %v, want errBadEntry", err)
				}
				return
			}
			if err != nil || got != tc.e {
				t.Fatalf("decodeEntry = %+v, %v; want %+v", got, err, tc.e)
			}
		})
	}
}

func TestIndexEntryRejects(t *testing.T) {
	good := entry{pack: 1, storedLen: 5, rawLen: 5}.appendTo(nil)
	badVersion := bytes.Clone(good)
	badVersion[0] = 2
	cases := map[string][]byte{
		"empty":       nil,
		"short":       good[:entrySize-1],
		"long":        append(bytes.Clone(good), 0),
		"bad version": badVersion,
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeEntry(b); !errors.Is(err, errBadEntry) {
				t.Fatalf("decodeEntry error = %v, want errBadEntry", err)
			}
		})
	}
}

func FuzzIndexEntry(f *testing.F) {
	for _, tc := range entryCases {
		f.Add(tc.e.appendTo(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			if !errors.Is(err, errBadEntry) {
				t.Fatalf("error %v does not wrap errBadEntry", err)
			}
			return
		}
		if got := e.appendTo(nil); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding gives %x, input was %x", got, b)
		}
	})
}

func TestRecordHeader(t *testing.T) {
	h := header{id: Sum([]byte("x")), codec: CodecZstd, storedLen: 3, rawLen: 9, payloadCRC: crc32.Checksum([]byte("abc"), castagnoli)}
	b := make([]byte, headerSize)
	h.put(b)
	got, err := decodeHeader(b)
	if err != nil || got != h {
		t.Fatalf("decodeHeader = %+v, %v; want %+v", got, err, h)
	}
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 0x10
		if _, err := decodeHeader(bad); !errors.Is(err, errBadHeader) {
			t.Fatalf("flipping byte %d: error = %v, want errBadHeader", i, err)
		}
	}
	if _, err := decodeHeader(b[:headerSize-1]); !errors.Is(err, errBadHeader) {
		t.Fatalf("short header: error = %v, want errBadHeader", err)
	}
}

func FuzzRecordHeader(f *testing.F) {
	b := make([]byte, headerSize)
	header{id: Sum(nil), codec: CodecZstdShuffle16, storedLen: 10, rawLen: 20}.put(b)
	f.Add(b)
	f.Add(b[:10])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeader(b)
		if err != nil {
			if !errors.Is(err, errBadHeader) {
				t.Fatalf("error %v does not wrap errBadHeader", err)
			}
			return
		}
		out := make([]byte, headerSize)
		h.put(out)
		if !bytes.Equal(out, b[:headerSize]) {
			t.Fatalf("re-encoding gives %x, input was %x", out, b[:headerSize])
		}
	})
}

func TestParsePackName(t *testing.T) {
	cases := []struct {
		name string
		num  uint32
		ok   bool
	}{
		{"pack-000001.dat", 1, true},
		{"pack-1234567.dat", 1234567, true},
		{packName(42), 42, true},
		{"pack-.dat", 0, false},
		{"pack-00001x.dat", 0, false},
		{"pack-000001.tmp", 0, false},
		{"pack-99999999999.dat", 0, false},
		{"MANIFEST-000001", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			num, ok := parsePackName(tc.name)
			if num != tc.num || ok != tc.ok {
				t.Errorf("parsePackName(%q) = %d, %v; want %d, %v", tc.name, num, ok, tc.num, tc.ok)
			}
		})
	}
}
