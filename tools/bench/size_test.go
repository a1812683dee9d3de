package bench

import (
	"errors"
	"testing"
)

var sizeCases = []struct {
	in   string
	want ByteSize
	err  bool
}{
	{in: "1GiB", want: 1 << 30},
	{in: "256MiB", want: 256 << 20},
	{in: "8 MiB", want: 8 << 20},
	{in: "1.5gib", want: 3 << 29},
	{in: "8MB", want: 8e6},
	{in: "4096", want: 4096},
	{in: "10k", want: 10 << 10},
	{in: "512B", want: 512},
	{in: "", err: true},
	{in: "0", err: true},
	{in: "-1GiB", err: true},
	{in: "NaN", err: true},
	{in: "Inf", err: true},
	{in: "1XB", err: true},
	{in: "GiB", err: true},
	{in: "9999999TiB", err: true},
}

func TestParseSize(t *testing.T) {
	for _, tc := range sizeCases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if tc.err {
				if !errors.Is(err, ErrBadSize) {
					t.Errorf("ParseSize(%q) = %d, %v; want ErrBadSize", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
			var b ByteSize
			if err := b.UnmarshalText([]byte(tc.in)); err != nil || b != tc.want {
				t.Errorf("UnmarshalText(%q) = %d, %v", tc.in, b, err)
			}
		})
	}
}

func TestByteSizeString(t *testing.T) {
	for _, tc := range []struct {
		in   ByteSize
		want string
	}{
		{512, "512 B"}, {1 << 30, "1 GiB"}, {3 << 29, "1.5 GiB"}, {7_600_000, "7.2 MiB"}, {5 << 40, "5 TiB"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, tc := range sizeCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			if !errors.Is(err, ErrBadSize) {
				t.Fatalf("ParseSize(%q) error %v does not wrap ErrBadSize", s, err)
			}
			return
		}
		if v < 1 {
			t.Fatalf("ParseSize(%q) = %d, want ≥ 1", s, v)
		}
		if _, err := ParseSize(v.String()); err != nil {
			t.Fatalf("ParseSize(%q).String() = %q does not parse: %v", s, v.String(), err)
		}
	})
}
