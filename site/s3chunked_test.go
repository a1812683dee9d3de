package site

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"testing"
)

func chunkedFrame(data []byte, chunk int, trailer string) []byte {
	var b bytes.Buffer
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		fmt.Fprintf(&b, "%x;chunk-signature=00\r\n%s\r\n", end-off, data[off:end])
	}
	b.WriteString("0\r\n")
	b.WriteString(trailer)
	b.WriteString("\r\n")
	return b.Bytes()
}

// Bodies in aws-chunked framing decode to their bytes, or fail; a wrong
// length, a missing or wrong checksum and broken framing fail.
func TestChunkedBody(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 5000)
	sum := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(data)))
	good := "x-amz-checksum-crc32:" + sum + "\r\n"
	cases := []struct {
		name string
		body []byte
		want int64
		alg  string
		ok   bool
	}{
		{"checksum right", chunkedFrame(data, 8192, good), int64(len(data)), "crc32", true},
		{"no trailer asked", chunkedFrame(data, 65536, ""), int64(len(data)), "", true},
		{"checksum wrong", chunkedFrame(data, 8192, "x-amz-checksum-crc32:AAAAAA==\r\n"), int64(len(data)), "crc32", false},
		{"checksum missing", chunkedFrame(data, 8192, ""), int64(len(data)), "crc32", false},
		{"shorter than said", chunkedFrame(data, 8192, good), int64(len(data)) + 1, "crc32", false},
		{"longer than said", chunkedFrame(data, 8192, good), int64(len(data)) - 1, "crc32", false},
		{"cut short", chunkedFrame(data, 8192, good)[:1000], int64(len(data)), "crc32", false},
		{"size not hex", []byte("zz\r\n"), 2, "", false},
	}
	for _, tc := range cases {
		got, err := decodeChunked(tc.body, tc.want, tc.alg)
		if ok := err == nil && bytes.Equal(got, data[:min(len(data), len(got))]) && int64(len(got)) == tc.want; ok != tc.ok {
			t.Errorf("%s: %d bytes, %v; want ok=%v", tc.name, len(got), err, tc.ok)
		}
	}
}

func decodeChunked(body []byte, want int64, alg string) ([]byte, error) {
	c := &chunkedBody{r: bufio.NewReader(bytes.NewReader(body)), body: io.NopCloser(nil), want: want, alg: alg, newHash: trailerChecksums[alg]}
	if err := c.checkEmpty(); err != nil { // as unchunkRequest does
		return nil, err
	}
	return io.ReadAll(io.LimitReader(c, want)) // as the protocol library reads it
}

// The decoder of aws-chunked bodies from the network never panics, never
// gives more bytes than the decoded length, and never succeeds on a
// body whose checksum trailer is wrong.
func FuzzChunkedBody(f *testing.F) {
	data := []byte("frame bytes")
	sum := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(data)))
	f.Add(chunkedFrame(data, 4, "x-amz-checksum-crc32:"+sum+"\r\n"), int64(len(data)), true)
	f.Add(chunkedFrame(data, 100, ""), int64(len(data)), false)
	f.Add([]byte("ffffffffffffffff\r\n"), int64(5), false)
	f.Fuzz(func(t *testing.T, body []byte, want int64, withSum bool) {
		if want < 0 || want > 1<<20 {
			return
		}
		alg := ""
		if withSum {
			alg = "crc32"
		}
		got, err := decodeChunked(body, want, alg)
		if int64(len(got)) > want {
			t.Fatalf("%d bytes out, %d said", len(got), want)
		}
		if err == nil && withSum && int64(len(got)) == want {
			// Success means the trailer held this very checksum.
			s := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(got)))
			if !bytes.Contains(body, []byte(s)) {
				t.Fatalf("accepted %q without its checksum %s", got, s)
			}
		}
	})
}
