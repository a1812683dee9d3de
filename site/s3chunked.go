package site

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/rclone/gofakes3"
)

// aws-chunked bodies (the AWS SDKs' streaming uploads): the gate decodes
// them itself, checking the framing, the decoded length and the trailing
// checksum the current SDKs send by default, and hands the protocol a
// plain body. The library it hands them to would read the chunks but
// skip the trailer, storing a body whose checksum did not match.
// Chunk signatures (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) are verified as
// a chain from the request's own signature; the trailer's signature of
// the -TRAILER variant is not (the trailer's checksum is).

// Bounds on what a client may send in the framing.
const (
	chunkedLineMax  = 4 << 10  // a chunk header or trailer line
	chunkedChunkMax = 16 << 20 // one chunk's data
	chunkedTrailers = 8        // trailer lines
)

// errChunked is a body whose aws-chunked framing is wrong.
var errChunked = errors.New("aws-chunked body")

// crc64NVME is the table of the CRC-64/NVME checksum S3 uses.
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

// trailerChecksums are the x-amz-checksum-* algorithms a trailer may
// carry, by name.
var trailerChecksums = map[string]func() hash.Hash{
	"crc32":     func() hash.Hash { return crc32.NewIEEE() },
	"crc32c":    func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) },
	"crc64nvme": func() hash.Hash { return crc64.New(crc64NVME) },
	"sha1":      sha1.New,
	"sha256":    sha256.New,
}

// isAWSChunked reports whether r's body is aws-chunked.
func isAWSChunked(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") ||
		strings.Contains(strings.ToLower(r.Header.Get("Content-Encoding")), "aws-chunked")
}

// unchunkRequest replaces an aws-chunked body of r by its decoded bytes,
// checked as they are read, and its headers by those of a plain body of
// that length.
func unchunkRequest(r *http.Request, signer *chunkSigner) error {
	size, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64)
	if err != nil || size < 0 {
		return gofakes3.ErrorMessage(gofakes3.ErrMissingContentLength, "an aws-chunked body needs x-amz-decoded-content-length")
	}
	var newHash func() hash.Hash
	var alg string
	if t := strings.ToLower(strings.TrimSpace(r.Header.Get("X-Amz-Trailer"))); t != "" {
		alg = strings.TrimPrefix(t, "x-amz-checksum-")
		if newHash = trailerChecksums[alg]; newHash == nil || alg == t {
			return gofakes3.ErrorMessagef(gofakes3.ErrInvalidRequest, "trailer %q is not a checksum this site knows", t)
		}
	}
	cb := &chunkedBody{r: bufio.NewReaderSize(r.Body, 64<<10), body: r.Body, want: size, alg: alg, newHash: newHash, signer: signer}
	if err := cb.checkEmpty(); err != nil {
		return err
	}
	r.Body = cb
	r.ContentLength = size
	r.Header.Set("Content-Length", strconv.FormatInt(size, 10))
	r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	r.Header.Del("X-Amz-Decoded-Content-Length")
	r.Header.Del("X-Amz-Trailer")
	var enc []string
	for _, e := range strings.Split(r.Header.Get("Content-Encoding"), ",") {
		if e = strings.TrimSpace(e); e != "" && !strings.EqualFold(e, "aws-chunked") {
			enc = append(enc, e)
		}
	}
	if len(enc) > 0 {
		r.Header.Set("Content-Encoding", strings.Join(enc, ","))
	} else {
		r.Header.Del("Content-Encoding")
	}
	r.TransferEncoding = nil
	return nil
}

// chunkedBody decodes an aws-chunked stream: "<hex size>[;ext]\r\n",
// that many bytes, "\r\n", ..., a zero-size chunk, trailer lines, an
// empty line. It fails (with the protocol's BadDigest or IncompleteBody)
// rather than end early, long or with a wrong checksum.
type chunkedBody struct {
	r       *bufio.Reader
	body    io.Closer
	want    int64 // decoded bytes the headers said
	got     int64
	left    int64 // bytes left in the current chunk
	started bool
	done    bool
	err     error
	alg     string
	newHash func() hash.Hash
	sum     hash.Hash
	// signed bodies: the chain of chunk signatures, the current chunk's
	// signature and the hash of its data so far
	signer   *chunkSigner
	chunkSig string
	chunkSum hash.Hash
}

// errChunkSignature answers a chunk whose signature is not the one its
// data and the chain call for (BadDigest, 400: not worth a retry).
var errChunkSignature = gofakes3.ErrorMessage(gofakes3.ErrBadDigest, "The chunk signature does not match the chunk's data and the request's signature.")

func (c *chunkedBody) Close() error { return c.body.Close() }

// checkEmpty reads the whole framing of a body said to be empty: a
// reader limited to no bytes never asks, and its checksum trailer must
// be checked all the same.
func (c *chunkedBody) checkEmpty() error {
	if c.want != 0 {
		return nil
	}
	if c.newHash != nil {
		c.sum = c.newHash()
	}
	for !c.done {
		if err := c.next(); err != nil {
			c.err = err
			return err
		}
	}
	return nil
}

func (c *chunkedBody) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.sum == nil && c.newHash != nil {
		c.sum = c.newHash()
	}
	for c.left == 0 && !c.done {
		if err := c.next(); err != nil {
			c.err = err
			return 0, err
		}
	}
	if c.done {
		c.err = io.EOF
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	c.got += int64(n)
	if c.sum != nil {
		c.sum.Write(p[:n])
	}
	if c.chunkSum != nil {
		c.chunkSum.Write(p[:n])
		if c.left == 0 && !c.signer.next(c.chunkSig, c.chunkSum.Sum(nil)) {
			c.err = errChunkSignature
			return n, c.err
		}
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		c.err = gofakes3.ErrorMessage(gofakes3.ErrIncompleteBody, fmt.Sprintf("%v: %v", errChunked, err))
		return n, c.err
	}
	if c.left == 0 && c.got == c.want {
		// The last byte: read the end of the framing and the trailers
		// now, as a reader limited to the decoded length never asks
		// again, and answer a wrong checksum with these bytes.
		for !c.done {
			if err := c.next(); err != nil {
				c.err = err
				return n, err
			}
		}
	}
	return n, nil
}

// next reads the framing after a chunk's data: the chunk's closing CRLF,
// the next chunk's header, and after the last one the trailers.
func (c *chunkedBody) next() error {
	bad := func(format string, args ...any) error {
		return gofakes3.ErrorMessage(gofakes3.ErrIncompleteBody, errChunked.Error()+": "+fmt.Sprintf(format, args...))
	}
	if c.started {
		if line, err := c.line(); err != nil || line != "" {
			return bad("no CRLF after a chunk (%v)", err)
		}
	}
	c.started = true
	line, err := c.line()
	if err != nil {
		return bad("chunk header: %v", err)
	}
	sizeHex, ext, _ := strings.Cut(line, ";")
	size, err := strconv.ParseInt(strings.TrimSpace(sizeHex), 16, 64)
	if err != nil || size < 0 || size > chunkedChunkMax {
		return bad("chunk size %q", sizeHex)
	}
	if c.signer != nil {
		sig, ok := strings.CutPrefix(strings.TrimSpace(ext), "chunk-signature=")
		if !ok || len(sig) != 64 {
			return errChunkSignature
		}
		c.chunkSig, c.chunkSum = sig, sha256.New()
		if size == 0 && !c.signer.next(sig, c.chunkSum.Sum(nil)) {
			return errChunkSignature
		}
	}
	if c.got+size > c.want {
		return bad("%d bytes past the %d x-amz-decoded-content-length said", c.got+size-c.want, c.want)
	}
	if size > 0 {
		c.left = size
		return nil
	}
	if c.got != c.want {
		return bad("%d bytes, x-amz-decoded-content-length said %d", c.got, c.want)
	}
	return c.trailers()
}

// trailers reads the trailer lines up to the empty one and checks the
// checksum one.
func (c *chunkedBody) trailers() error {
	var value string
	found := false
	for i := 0; ; i++ {
		line, err := c.line()
		if err == io.EOF && i == 0 && c.alg == "" {
			break // a body without trailers may end after the last chunk
		}
		if err != nil {
			return gofakes3.ErrorMessage(gofakes3.ErrIncompleteBody, fmt.Sprintf("%v: trailers: %v", errChunked, err))
		}
		if line == "" {
			break
		}
		if i == chunkedTrailers {
			return gofakes3.ErrorMessage(gofakes3.ErrIncompleteBody, errChunked.Error()+": too many trailers")
		}
		k, v, ok := strings.Cut(line, ":")
		if ok && c.alg != "" && strings.EqualFold(strings.TrimSpace(k), "x-amz-checksum-"+c.alg) {
			value, found = strings.TrimSpace(v), true
		}
	}
	c.done = true
	if c.alg == "" {
		return nil
	}
	want, err := base64.StdEncoding.DecodeString(value)
	if !found || err != nil || !bytes.Equal(want, c.sum.Sum(nil)) {
		return gofakes3.ErrorMessagef(gofakes3.ErrBadDigest, "The %s you specified did not match the calculated checksum.", strings.ToUpper(c.alg))
	}
	return nil
}

// line reads one CRLF- (or LF-) terminated line of at most
// chunkedLineMax bytes, without its end.
func (c *chunkedBody) line() (string, error) {
	var b []byte
	for {
		frag, err := c.r.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > chunkedLineMax {
			return "", fmt.Errorf("line longer than %d bytes", chunkedLineMax)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(b) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
}

// A signed payload: the request's signature covers x-amz-content-sha256,
// so the body must hash to it, or anyone on the path could swap the
// body under a valid signature. The gate checks it as the body streams,
// answering a mismatch with the last bytes (before the put commits).

// errSHA256Mismatch answers a body that does not hash to its
// x-amz-content-sha256: BadDigest (400), with S3's own message for it.
var errSHA256Mismatch = gofakes3.ErrorMessage(gofakes3.ErrBadDigest, "The provided 'x-amz-content-sha256' header does not match what was computed.")

// signedPayload returns the SHA-256 r's signature covers, if r sends
// one (64 hex digits rather than UNSIGNED-PAYLOAD or a STREAMING-
// mode).
func signedPayload(r *http.Request) ([]byte, bool) {
	v := r.Header.Get("X-Amz-Content-Sha256")
	if len(v) != 64 {
		return nil, false
	}
	b, err := hex.DecodeString(v)
	return b, err == nil
}

// payloadCheck passes a body through, checking at its last byte (its
// length is known) that it hashes to want.
type payloadCheck struct {
	r    io.ReadCloser
	want []byte
	size int64
	got  int64
	h    hash.Hash
}

func (p *payloadCheck) Close() error { return p.r.Close() }

func (p *payloadCheck) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.h.Write(b[:n])
	p.got += int64(n)
	if (p.got == p.size || err == io.EOF) && !bytes.Equal(p.h.Sum(nil), p.want) {
		return n, errSHA256Mismatch
	}
	return n, err
}

// checkPayload makes r's body check itself against its signed SHA-256
// (an empty one at once: nothing will read it).
func checkPayload(r *http.Request) error {
	want, ok := signedPayload(r)
	if !ok {
		return nil
	}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		if empty := sha256.Sum256(nil); !bytes.Equal(want, empty[:]) {
			return errSHA256Mismatch
		}
		return nil
	}
	r.Body = &payloadCheck{r: r.Body, want: want, size: r.ContentLength, h: sha256.New()}
	return nil
}

// chunkSigner verifies the chain of chunk signatures of a
// STREAMING-AWS4-HMAC-SHA256-PAYLOAD body: each chunk's signature signs
// its data's SHA-256 and the signature before it, from the request's
// own (the seed).
type chunkSigner struct {
	key       []byte // the SigV4 signing key of the request's date, region and service
	timestamp string // X-Amz-Date
	scope     string // date/region/service/aws4_request
	prev      string // the last signature verified (the seed first)
}

// emptySHA256 is the hex SHA-256 of nothing, part of every chunk's
// string to sign.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// next checks sig, the signature a chunk whose data hashes to dataSHA256
// came with, and chains it.
func (c *chunkSigner) next(sig string, dataSHA256 []byte) bool {
	toSign := "AWS4-HMAC-SHA256-PAYLOAD\n" + c.timestamp + "\n" + c.scope + "\n" + c.prev + "\n" + emptySHA256 + "\n" + hex.EncodeToString(dataSHA256)
	want := hex.EncodeToString(hmacSHA256(c.key, []byte(toSign)))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return false
	}
	c.prev = sig
	return true
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// signingKey is SigV4's key for secret on date (YYYYMMDD), region and
// service.
func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), []byte(date))
	k = hmacSHA256(k, []byte(region))
	k = hmacSHA256(k, []byte(service))
	return hmacSHA256(k, []byte("aws4_request"))
}

// newChunkSigner reads what chunk signatures chain from in r's
// Authorization header (Credential scope, Signature) and X-Amz-Date,
// with secret the secret of the key the request was signed with.
func newChunkSigner(r *http.Request, secret string) (*chunkSigner, error) {
	auth := r.Header.Get("Authorization")
	field := func(name string) string {
		i := strings.Index(auth, name+"=")
		if i < 0 {
			return ""
		}
		v := auth[i+len(name)+1:]
		if j := strings.IndexAny(v, ", "); j >= 0 {
			v = v[:j]
		}
		return v
	}
	cred, seed, ts := field("Credential"), field("Signature"), r.Header.Get("X-Amz-Date")
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || seed == "" || ts == "" {
		return nil, gofakes3.ErrorMessage(gofakes3.ErrInvalidRequest, "a signed aws-chunked body needs the request's credential scope, signature and x-amz-date")
	}
	return &chunkSigner{key: signingKey(secret, parts[1], parts[2], parts[3]), timestamp: ts,
		scope: strings.Join(parts[1:], "/"), prev: seed}, nil
}
