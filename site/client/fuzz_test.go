package client

import (
	"bytes"
	"testing"
)

// FuzzDecode feeds arbitrary answer bodies to every decoder of site answers.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"error":"not found","hint":"check the name"}`))
	f.Add([]byte(`{"site":"a","links":[{"peer":"b","backlog":1}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, status := range []int{400, 404, 504, 599} {
			if e := parseError(status, body); e.Message == "" || e.Status != status {
				t.Fatalf("parseError(%d, %q) = %+v", status, body, e)
			}
		}
		if st, err := decodeStatus(body); err == nil && !bytes.Equal(st.Raw, body) {
			t.Fatalf("Raw not kept")
		}
		var page ListPage
		_ = decodeJSON(bytes.NewReader(body), &page)
		var vl VersionList
		_ = decodeJSON(bytes.NewReader(body), &vl)
		var pr PutResult
		_ = decodeJSON(bytes.NewReader(body), &pr)
	})
}

// FuzzParseETag checks that ParseETag returns either "" or 64 lower-case hex digits.
func FuzzParseETag(f *testing.F) {
	f.Add(`"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"`)
	f.Fuzz(func(t *testing.T, v string) {
		s := ParseETag(v)
		if s == "" {
			return
		}
		if len(s) != 64 {
			t.Fatalf("ParseETag(%q) = %q", v, s)
		}
		for _, r := range s {
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
				t.Fatalf("ParseETag(%q) = %q", v, s)
			}
		}
	})
}
