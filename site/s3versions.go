package site

import (
	"context"
	"strings"

	"github.com/rclone/gofakes3"

	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

// Versions through S3: a skyfed version is an S3 version, its ID the
// version string (1763765000000.0000.alpha), a tombstone a delete
// marker. Buckets are always versioned. Versions are signed history, so
// deleting one (DeleteObject with a versionId) is not done.

var _ gofakes3.VersionedBackend = (*s3Backend)(nil)

func (b *s3Backend) VersioningConfiguration(bucket string) (gofakes3.VersioningConfiguration, error) {
	if err := b.bucket(context.Background(), bucket); err != nil {
		return gofakes3.VersioningConfiguration{}, err
	}
	return gofakes3.VersioningConfiguration{Status: gofakes3.VersioningEnabled}, nil
}

func (b *s3Backend) SetVersioningConfiguration(bucket string, v gofakes3.VersioningConfiguration) error {
	if v.Status == gofakes3.VersioningEnabled {
		return nil
	}
	return gofakes3.ErrorMessage(gofakes3.ErrNotImplemented, "versioning cannot be suspended: every skyfed version is kept, signed, until garbage collection")
}

// version resolves version id of bucket/key, asking the federation when
// this site does not have it.
func (b *s3Backend) version(bucket, key string, id gofakes3.VersionID) (*manifest.Manifest, error) {
	name, err := s3Name(bucket, key)
	if err != nil {
		return nil, err
	}
	stamp, err := manifest.ParseStamp(string(id))
	if err != nil {
		return nil, gofakes3.ResourceError(gofakes3.ErrNoSuchVersion, string(id))
	}
	ctx := context.Background() // the library gives versioned calls no context
	m, err := b.s.version(s3From(ctx).request(ctx), name, stamp)
	if err != nil {
		return nil, gofakes3.ResourceError(gofakes3.ErrNoSuchVersion, string(id))
	}
	return m, nil
}

func (b *s3Backend) GetObjectVersion(bucket, key string, id gofakes3.VersionID, rnge *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	m, err := b.version(bucket, key, id)
	if err != nil {
		return nil, err
	}
	if m.Tombstone {
		return &gofakes3.Object{Name: key, VersionID: id, IsDeleteMarker: true, Contents: noBody{}}, nil
	}
	return b.objectOf(context.Background(), bucket, key, m, rnge)
}

func (b *s3Backend) HeadObjectVersion(bucket, key string, id gofakes3.VersionID) (*gofakes3.Object, error) {
	m, err := b.version(bucket, key, id)
	if err != nil {
		return nil, err
	}
	if m.Tombstone {
		return &gofakes3.Object{Name: key, VersionID: id, IsDeleteMarker: true, Contents: noBody{}}, nil
	}
	return &gofakes3.Object{Name: key, Metadata: s3Metadata(m), Size: m.Size, Contents: noBody{}, Hash: etagOf(m), VersionID: id}, nil
}

func (b *s3Backend) DeleteObjectVersion(bucket, key string, id gofakes3.VersionID) (gofakes3.ObjectDeleteResult, error) {
	return gofakes3.ObjectDeleteResult{}, gofakes3.ErrorMessage(gofakes3.ErrNotImplemented,
		"skyfed versions are signed history: delete the object (a new delete-marker version) instead of one of its versions")
}

// ListBucketVersions lists every version of the names under the prefix,
// newest first per name, tombstones as delete markers, a page of
// max-keys versions at a time.
func (b *s3Backend) ListBucketVersions(bucket string, prefix *gofakes3.Prefix, page *gofakes3.ListBucketVersionsPage) (*gofakes3.ListBucketVersionsResult, error) {
	if err := b.bucket(context.Background(), bucket); err != nil {
		return nil, err
	}
	res := gofakes3.NewListBucketVersionsResult(bucket, prefix, page)
	var pfx, delim string
	if prefix != nil {
		pfx = prefix.Prefix
		if prefix.HasDelimiter {
			delim = prefix.Delimiter
		}
	}
	limit := int64(1000)
	var keyMarker string
	var versionMarker gofakes3.VersionID
	if page != nil {
		if page.MaxKeys > 0 && page.MaxKeys < limit {
			limit = page.MaxKeys
		}
		if page.HasKeyMarker {
			keyMarker = page.KeyMarker
		}
		if page.HasVersionIDMarker {
			versionMarker = page.VersionIDMarker
		}
	}
	base := bucket + "/"
	var n int64
	var lastKey string
	var lastVersion gofakes3.VersionID
	// emit adds name's versions after skipThrough (all when empty) and
	// reports false once the page is full.
	emit := func(name naming.Name, skipThrough gofakes3.VersionID) (bool, error) {
		key := strings.TrimPrefix(name.String(), base)
		hist, err := b.s.objects.History(name)
		if err != nil {
			return false, err
		}
		skipping := skipThrough != ""
		for i, m := range hist {
			if skipping {
				skipping = gofakes3.VersionID(m.Version()) != skipThrough
				continue
			}
			if n == limit {
				res.IsTruncated, res.NextKeyMarker, res.NextVersionIDMarker = true, lastKey, lastVersion
				return false, nil
			}
			res.Versions = append(res.Versions, versionItem(key, m, i == 0))
			lastKey, lastVersion = key, gofakes3.VersionID(m.Version())
			n++
		}
		return true, nil
	}
	after := ""
	if keyMarker != "" {
		after = base + keyMarker
		if versionMarker != "" { // the rest of the marker's own history first
			name, err := s3Name(bucket, keyMarker)
			if err != nil {
				return nil, err
			}
			if more, err := emit(name, versionMarker); err != nil || !more {
				return res, err
			}
		}
	}
	for {
		names, more, err := b.s.objects.Names(base+pfx, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			after = name.String()
			key := strings.TrimPrefix(name.String(), base)
			if delim != "" {
				if i := strings.Index(key[len(pfx):], delim); i >= 0 {
					cp := key[:len(pfx)+i+len(delim)]
					res.AddPrefix(cp)
					after = base + cp + "\xff"
					continue
				}
			}
			if more, err := emit(name, ""); err != nil || !more {
				return res, err
			}
		}
		if !more {
			return res, nil
		}
	}
}

func versionItem(key string, m *manifest.Manifest, latest bool) gofakes3.VersionItem {
	if m.Tombstone {
		return &gofakes3.DeleteMarker{Key: key, VersionID: gofakes3.VersionID(m.Version()), IsLatest: latest, LastModified: gofakes3.NewContentTime(m.Stamp.Time())}
	}
	return &gofakes3.Version{Key: key, VersionID: gofakes3.VersionID(m.Version()), IsLatest: latest, LastModified: gofakes3.NewContentTime(m.Stamp.Time()),
		Size: m.Size, StorageClass: gofakes3.StorageStandard, ETag: etag(m)}
}
