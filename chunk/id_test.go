package chunk

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const abcHex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" // SHA-256("abc")

var parseIDCases = []struct {
	name    string
	in      string
	want    string // canonical form; "" means ErrBadID
	wantErr bool
}{
	{name: "lowercase", in: abcHex, want: abcHex},
	{name: "uppercase", in: strings.ToUpper(abcHex), want: abcHex},
	{name: "zero", in: strings.Repeat("0", 64), want: strings.Repeat("0", 64)},
	{name: "empty", in: "", wantErr: true},
	{name: "short", in: abcHex[:63], wantErr: true},
	{name: "long", in: abcHex + "0", wantErr: true},
	{name: "non-hex", in: "zz" + abcHex[2:], wantErr: true},
	{name: "spaces", in: " " + abcHex[1:], wantErr: true},
	{name: "huge", in: strings.Repeat("a", 10000), wantErr: true},
}

func TestParseID(t *testing.T) {
	for _, tc := range parseIDCases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := ParseID(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrBadID) {
					t.Fatalf("ParseID(%q) error = %v, want ErrBadID", tc.in, err)
				}
				if len(err.Error()) > 300 {
					t.Errorf("error message is %d bytes long", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseID(%q): %v", tc.in, err)
			}
			if got := id.String(); got != tc.want {
				t.Errorf("String() = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestIDForms(t *testing.T) {
	id := Sum([]byte("abc"))
	if got := id.String(); got != abcHex {
		t.Errorf("Sum(abc) = %s, want %s", got, abcHex)
	}
	if got := id.Short(); got != abcHex[:12] {
		t.Errorf("Short() = %s, want %s", got, abcHex[:12])
	}
	if id.IsZero() {
		t.Error("IsZero() of a real ID = true")
	}
	if !(ID{}).IsZero() {
		t.Error("IsZero() of the zero ID = false")
	}
	back, err := ParseID(id.String())
	if err != nil || back != id {
		t.Errorf("ParseID(String()) = %v, %v; want %v", back, err, id)
	}
}

func TestIDJSON(t *testing.T) {
	type doc struct{ ID ID }
	in := doc{ID: Sum([]byte("abc"))}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ID":"` + abcHex + `"}`; string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
	var out doc
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Errorf("round trip = %v, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"ID":"abc"}`), &out); !errors.Is(err, ErrBadID) {
		t.Errorf("bad ID: %v, want ErrBadID", err)
	}
}
