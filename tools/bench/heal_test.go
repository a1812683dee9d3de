package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunHealSmall(t *testing.T) {
	res, err := RunHeal(context.Background(), HealConfig{Size: 16 << 20, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Chunks != 16 || res.Scrub.Bytes != 16<<20 || res.Compact.Bytes != 8<<20 || res.Reclaimed <= 0 {
		t.Fatalf("result %+v: want 16 chunks scrubbed, 8 moved, space reclaimed", res)
	}
	var out bytes.Buffer
	if err := res.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scrub (read + check + hash)", "compaction (live bytes moved)", "min(raw read, SHA-256)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
