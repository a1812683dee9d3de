package engine

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
)

var update = flag.Bool("update", false, "rewrite the engine's golden scripts with what it does now")

// TestScripts drives one engine through the scripts in testdata and
// compares what it does with the recorded output (raft's interaction
// tests are the model). A script line is a command; the engine's Ready
// after it is recorded below it, indented. -update rewrites them.
//
//	up <peer> <out|in> [flood] [space]   link up (space: the peer takes MsgSpace)
//	down <peer> <out|in>              link down
//	put <id>...                       local arrivals (one-byte chunk IDs, hex)
//	have <id>...                      chunks stored here (as if arrived)
//	offer <peer> <dir> <id>...        the peer offers chunks
//	answer <peer> <dir> <want|have|later>...   the peer answers the last offer
//	data <peer> <dir> <lane> <id> <offset> <len> <total>   a frame
//	ack <peer> <dir> <status> <id>...
//	stored <peer> <dir> <lane> <id> <result>
//	sent <peer> <dir> <id>            the last frame of a bulk ship left
//	tick <duration>                   time passes
//	space <full|room>                 this site's disk became full / has room
//	peer-space <peer> <dir> <full|room>   the peer says its disk is full / has room
func TestScripts(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.script"))
	if len(files) == 0 {
		t.Fatal("no scripts")
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			got := runScript(t, src)
			if *update {
				if err := os.WriteFile(name, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !bytes.Equal(got, src) {
				t.Errorf("%s: the engine now does otherwise (go test ./forward/engine -run TestScripts -update, then review the diff):\n%s", name, got)
			}
		})
	}
}

type scriptState struct {
	e       *Engine
	st      *scriptStorage
	now     time.Time
	offered map[LinkID]*wire.Offer // the last offer sent on each link
}

func runScript(t *testing.T, src []byte) []byte {
	s := &scriptState{st: &scriptStorage{has: map[chunk.ID]bool{}}, now: t0, offered: map[LinkID]*wire.Offer{}}
	s.e = New(Config{Site: "a", Storage: s.st, Rand: bytes.NewReader(make([]byte, 1<<16))})
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "  ") {
			continue // recorded output: made anew
		}
		out.WriteString(line + "\n")
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if err := s.do(f); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		rd := s.e.Ready()
		for _, m := range rd.Messages {
			if m.Msg.Type == wire.MsgOffer {
				s.offered[m.Link] = m.Msg.Offer
			}
		}
		out.WriteString(rd.String())
	}
	return out.Bytes()
}

func scriptID(s string) (chunk.ID, error) {
	b, err := strconv.ParseUint(s, 16, 8)
	return chunk.ID{byte(b)}, err
}

func (s *scriptState) link(peer, dir string) LinkID {
	if dir == "in" {
		return LinkID{Peer: peer, Dir: DirIn}
	}
	return LinkID{Peer: peer, Dir: DirOut}
}

func (s *scriptState) do(f []string) error {
	ids := func(from int) ([][32]byte, error) {
		var out [][32]byte
		for _, x := range f[from:] {
			id, err := scriptID(x)
			if err != nil {
				return nil, err
			}
			out = append(out, id)
		}
		return out, nil
	}
	switch f[0] {
	case "up":
		mode, space := ModeOffer, false
		for _, opt := range f[3:] {
			mode = map[bool]Mode{true: ModeFlood, false: mode}[opt == "flood"]
			space = space || opt == "space"
		}
		s.e.Step(LinkUp{Now: s.now, Link: s.link(f[1], f[2]), Mode: mode, Space: space})
	case "down":
		s.e.Step(LinkDown{Now: s.now, Link: s.link(f[1], f[2])})
	case "put", "have":
		raw, err := ids(1)
		if err != nil {
			return err
		}
		for _, id := range raw {
			s.st.has[id] = true
			if f[0] == "put" {
				s.st.log = append(s.st.log, Arrival{Seq: uint64(len(s.st.log) + 1), Kind: KindChunk, ID: id, From: Local, At: s.now})
			}
		}
		s.e.Step(LogGrew{Now: s.now})
	case "offer":
		raw, err := ids(3)
		if err != nil {
			return err
		}
		s.e.Step(Received{Now: s.now, Link: s.link(f[1], f[2]), Msg: &wire.Message{Type: wire.MsgOffer,
			Offer: &wire.Offer{Lane: wire.LaneBulk, Batch: 7, IDs: raw}}})
	case "answer":
		l := s.link(f[1], f[2])
		o := s.offered[l]
		if o == nil {
			return fmt.Errorf("nothing offered on %s", l)
		}
		var as []wire.Answer
		for _, x := range f[3:] {
			as = append(as, map[string]wire.Answer{"want": wire.AnswerWant, "have": wire.AnswerHave, "later": wire.AnswerLater}[x])
		}
		s.e.Step(Received{Now: s.now, Link: l, Msg: &wire.Message{Type: wire.MsgAnswer,
			Answer: &wire.AnswerMsg{Lane: o.Lane, Batch: o.Batch, Answers: as}}})
	case "data":
		lane := map[string]wire.Lane{"bulk": wire.LaneBulk, "lookup": wire.LaneLookup}[f[3]]
		id, err := scriptID(f[4])
		if err != nil {
			return err
		}
		off, _ := strconv.Atoi(f[5])
		n, _ := strconv.Atoi(f[6])
		total, _ := strconv.Atoi(f[7])
		s.e.Step(Received{Now: s.now, Link: s.link(f[1], f[2]), Msg: &wire.Message{Type: wire.MsgData, Data: &wire.Data{
			Lane: lane, ID: id, RawLen: uint32(total), Total: uint32(total), Offset: uint32(off), Payload: make([]byte, n)}}})
	case "ack":
		raw, err := ids(4)
		if err != nil {
			return err
		}
		status := map[string]wire.AckStatus{"stored": wire.AckStored, "duplicate": wire.AckDuplicate, "rejected": wire.AckRejected, "resend": wire.AckResend}[f[3]]
		st := make([]wire.AckStatus, len(raw))
		for i := range st {
			st[i] = status
		}
		s.e.Step(Received{Now: s.now, Link: s.link(f[1], f[2]), Msg: &wire.Message{Type: wire.MsgAck,
			Ack: &wire.Ack{Lane: wire.LaneBulk, IDs: raw, Status: st}}})
	case "stored":
		id, err := scriptID(f[4])
		if err != nil {
			return err
		}
		res := map[string]StoreResult{"stored": Stored, "duplicate": Duplicate, "rejected": Rejected, "failed": Failed}[f[5]]
		if res == Stored {
			s.st.has[id] = true
		}
		lane := map[string]wire.Lane{"bulk": wire.LaneBulk, "lookup": wire.LaneLookup}[f[3]]
		s.e.Step(StoreDone{Now: s.now, Link: s.link(f[1], f[2]), Lane: lane, Kind: KindChunk, ID: id, Result: res})
	case "sent":
		id, err := scriptID(f[3])
		if err != nil {
			return err
		}
		s.e.Step(ShipSent{Now: s.now, Link: s.link(f[1], f[2]), Lane: wire.LaneBulk, Kind: KindChunk, ID: id})
	case "tick":
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return err
		}
		s.now = s.now.Add(d)
		s.e.Step(Tick{Now: s.now})
	case "space":
		s.e.Step(SpaceChanged{Now: s.now, Full: f[1] == "full"})
	case "peer-space":
		s.e.Step(Received{Now: s.now, Link: s.link(f[1], f[2]), Msg: &wire.Message{Type: wire.MsgSpace,
			Space: &wire.Space{Full: f[3] == "full"}}})
	default:
		return fmt.Errorf("unknown command %q", f[0])
	}
	return nil
}

// scriptStorage is a site's chunks and chunk log in memory.
type scriptStorage struct {
	has map[chunk.ID]bool
	log []Arrival
}

func (m *scriptStorage) Has(k Kind, id chunk.ID) (bool, error) {
	return k == KindChunk && m.has[id], nil
}
func (m *scriptStorage) Head(k Kind) uint64 {
	if k == KindChunk {
		return uint64(len(m.log))
	}
	return 0
}
func (m *scriptStorage) ReadLog(k Kind, after uint64, max int) ([]Arrival, error) {
	if k != KindChunk || after >= uint64(len(m.log)) {
		return nil, nil
	}
	return m.log[after:min(uint64(len(m.log)), after+uint64(max))], nil
}
func (m *scriptStorage) Cursor(Kind, LinkID) (uint64, error)               { return 0, nil }
func (m *scriptStorage) Lookup(wire.QueryKind, [32]byte) ([][]byte, error) { return nil, nil }
func (m *scriptStorage) ManifestChunks(chunk.ID) ([]chunk.ID, error)       { return nil, nil }
