package site

import (
	"bufio"
	"bytes"
	"crypto/sha256"
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

// The chain of chunk signatures of AWS's own example of a signed
// aws-chunked upload (sigv4-streaming.html: 66,560 bytes of 'a' in
// chunks of 64 KiB, 1 KiB and nothing).
func TestChunkSignaturesOfAWSExample(t *testing.T) {
	c := &chunkSigner{
		key:       signingKey("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3"),
		timestamp: "20130524T000000Z",
		scope:     "20130524/us-east-1/s3/aws4_request",
		prev:      "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
	}
	for i, ch := range []struct {
		n   int
		sig string
	}{
		{65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"},
		{1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"},
		{0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"},
	} {
		sum := sha256.Sum256(bytes.Repeat([]byte("a"), ch.n))
		if !c.next(ch.sig, sum[:]) {
			t.Fatalf("chunk %d: signature %s refused", i+1, ch.sig)
		}
	}
	if c.next("b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9", make([]byte, 32)) {
		t.Error("a signature replayed out of its chain was taken")
	}
}
