package site

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/rclone/gofakes3"

	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

// Multipart uploads stream each part into chunks as it arrives
// (naming.Store.PutPart); completing one makes the version (see
// naming/upload.go for why parts are re-cut into the fixed chunk size).
// The library keeps the list of uploads and parts for ListParts and
// ListMultipartUploads in memory; the parts themselves, and the upload
// records, are in the site's index, and garbage collection aborts
// uploads left unfinished for a week (tools/heal.DefaultUploadExpiry).

// metaMultipartETag is the manifest meta key of the ETag S3 gives an
// object made by a multipart upload (MD5 of the parts' MD5s, "-", the
// part count), which CompleteMultipartUpload, GET, HEAD and listings
// answer, as AWS does: no MD5 of the whole object is computed (clients
// know such an ETag is not one; rclone and s3cmd keep their own MD5 in
// user metadata).
const metaMultipartETag = "s3-multipart-etag"

var _ gofakes3.MultipartBackend = (*s3Backend)(nil)

func (b *s3Backend) CreateMultipartUpload(ctx context.Context, bucket, key string, meta map[string]string) (gofakes3.UploadID, error) {
	name, err := writable(ctx, bucket, key)
	if err != nil {
		return "", err
	}
	opts, err := putOptionsS3(meta, nil)
	if err != nil {
		return "", err
	}
	id, err := b.s.objects.StartUpload(name, opts)
	if err != nil {
		return "", s3Err(bucket, key, err)
	}
	return gofakes3.UploadID(id), nil
}

// upload finds upload id of bucket/key.
func (b *s3Backend) upload(bucket, key string, id gofakes3.UploadID) error {
	u, _, err := b.s.objects.GetUpload(string(id))
	if errors.Is(err, naming.ErrNoSuchUpload) || err == nil && u.Name != bucket+"/"+key {
		return gofakes3.ResourceError(gofakes3.ErrNoSuchUpload, string(id))
	}
	return err
}

func (b *s3Backend) UploadPart(ctx context.Context, bucket, key string, id gofakes3.UploadID, n int, size int64, body io.Reader) (string, error) {
	if err := mayWrite(ctx, bucket, key); err != nil {
		return "", err
	}
	if err := b.upload(bucket, key, id); err != nil {
		return "", err
	}
	if err := b.s.space.refuse(); err != nil {
		return "", s3Err(bucket, key, err)
	}
	p, err := b.s.objects.PutPart(ctx, string(id), n, body)
	if err != nil {
		if errors.Is(err, naming.ErrNoSuchUpload) {
			return "", gofakes3.ResourceError(gofakes3.ErrNoSuchUpload, string(id))
		}
		return "", s3Err(bucket, key, err)
	}
	if size >= 0 && p.Size != size {
		return "", gofakes3.ErrorMessage(gofakes3.ErrIncompleteBody, fmt.Sprintf("part %d: %d bytes of %d", n, p.Size, size))
	}
	b.s.metrics.ingestBytes.Add(float64(p.Size))
	return `"` + p.MD5 + `"`, nil
}

func (b *s3Backend) CompleteMultipartUpload(ctx context.Context, bucket, key string, id gofakes3.UploadID, in *gofakes3.CompleteMultipartUploadRequest) (gofakes3.VersionID, string, error) {
	if err := mayWrite(ctx, bucket, key); err != nil {
		return "", "", err
	}
	if err := b.upload(bucket, key, id); err != nil {
		return "", "", err
	}
	if err := b.s.checkClock(); err != nil {
		return "", "", s3Err(bucket, key, err)
	}
	if len(in.Parts) == 0 {
		return "", "", gofakes3.ErrorMessage(gofakes3.ErrMalformedXML, "a completion lists at least one part")
	}
	refs := make([]naming.PartRef, len(in.Parts))
	etags := md5.New()
	for i, p := range in.Parts {
		tag := strings.Trim(p.ETag, `"`)
		refs[i] = naming.PartRef{Number: p.PartNumber, MD5: strings.ToLower(tag)}
		raw, err := hex.DecodeString(tag)
		if err != nil || len(raw) != md5.Size {
			return "", "", gofakes3.ErrorMessage(gofakes3.ErrInvalidPart, fmt.Sprintf("part %d: ETag %q is not one this site gave", p.PartNumber, p.ETag))
		}
		etags.Write(raw)
	}
	multipartETag := fmt.Sprintf("%s-%d", hex.EncodeToString(etags.Sum(nil)), len(in.Parts))
	m, err := b.s.objects.CompleteUpload(ctx, string(id), refs, []manifest.Meta{{Key: metaMultipartETag, Value: multipartETag}})
	switch {
	case errors.Is(err, naming.ErrInvalidPart):
		return "", "", gofakes3.ErrorMessage(gofakes3.ErrInvalidPart, err.Error())
	case errors.Is(err, naming.ErrNoSuchUpload):
		return "", "", gofakes3.ResourceError(gofakes3.ErrNoSuchUpload, string(id))
	case err != nil && m == nil:
		return "", "", s3Err(bucket, key, err)
	case err != nil:
		b.s.log.Warn("multipart upload completed, its records not dropped (garbage collection will)", "name", m.Name, "upload", id, "err", err)
	}
	b.s.metrics.ingestObjs.Inc()
	b.s.metrics.s3Puts.Inc()
	return "", `"` + multipartETag + `"`, nil
}

func (b *s3Backend) AbortMultipartUpload(ctx context.Context, bucket, key string, id gofakes3.UploadID) error {
	if err := mayWrite(ctx, bucket, key); err != nil {
		return err
	}
	if err := b.upload(bucket, key, id); err != nil {
		return err
	}
	if err := b.s.objects.AbortUpload(string(id)); err != nil {
		if errors.Is(err, naming.ErrNoSuchUpload) {
			return gofakes3.ResourceError(gofakes3.ErrNoSuchUpload, string(id))
		}
		return err
	}
	return nil
}
