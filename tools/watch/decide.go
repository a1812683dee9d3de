package watch

import "time"

// Status is where a file's put stands, as recorded in the state.
type Status byte

// Statuses of a record. The numbers are stored.
const (
	// StatusPutting: the put was about to be sent. It may have reached
	// the site before a crash; the name's latest version tells.
	StatusPutting Status = 1
	// StatusPut: the site acknowledged the put of these bytes.
	StatusPut Status = 2
	// StatusConfirmed: --delete-after-sites sites hold the version; the
	// file may be removed.
	StatusConfirmed Status = 3
	// StatusDeleted: the file was removed; the record goes on the next
	// pass that finds the file gone.
	StatusDeleted Status = 4
)

var statusNames = [...]string{"", "putting", "put", "confirmed", "deleted"}

func (s Status) String() string {
	if int(s) < len(statusNames) && s != 0 {
		return statusNames[s]
	}
	return "unknown"
}

// Record is what the state keeps of one file, by its path relative to
// the watched directory.
type Record struct {
	Size     int64
	MTime    int64 // modification time, Unix nanoseconds
	SHA256   [32]byte
	Name     string // the object name it was put as
	Version  string // the version the site made ("" while putting)
	Manifest string // that version's manifest ID, hex ("" from a site too old to say)
	Status   Status
	Sites    int // sites that held the version when it was confirmed
}

// File is what a look at a path found.
type File struct {
	Exists      bool
	Size, MTime int64
	// Complete: closed after writing or renamed in (an inotify event
	// for these size and mtime), or unchanged for the settle time.
	Complete bool
}

// Latest is the name's latest version at the site, as far as the
// watcher knows.
type Latest struct {
	Found    bool
	SHA256   [32]byte
	Version  string
	Manifest string
}

// Known is what the watcher has learnt about a path so far in one pass:
// each piece is asked for by an Action and then given back to Decide.
type Known struct {
	HaveSum    bool
	Sum        [32]byte // the file's SHA-256
	HaveLatest bool
	Latest     Latest
	HaveHeld   bool
	Held       int // sites holding the recorded version
}

// Action is what to do next for a path.
type Action byte

// Actions, in the order a new file meets them.
const (
	Idle      Action = iota // nothing to do: put (and kept), or never seen
	Wait                    // not complete yet, or not held by enough sites: look again later
	Hash                    // read the file's SHA-256
	Touch                   // same bytes as recorded: record the new size and mtime only
	AskLatest               // ask for the name's latest version
	Same                    // the latest version holds these bytes: record it as put, put nothing
	Put                     // put the file as a new version
	AskHeld                 // ask how many sites hold the recorded version
	Remove                  // enough sites hold it: remove the file
	Forget                  // the file is gone: drop its record
)

var actionNames = [...]string{"idle", "wait", "hash", "touch", "ask-latest", "same", "put", "ask-held", "remove", "forget"}

func (a Action) String() string { return actionNames[a] }

// Decide is the watcher's whole decision for one path, apart from any
// I/O: given its record (nil if none), what a look at the file found,
// what has been learnt in this pass, the name it goes under and
// --delete-after-sites (0: never remove), it says what to do next.
func Decide(rec *Record, f File, k Known, name string, deleteAfter int) Action {
	if !f.Exists {
		if rec == nil {
			return Idle
		}
		return Forget
	}
	if rec != nil && rec.Name == name && rec.Size == f.Size && rec.MTime == f.MTime {
		switch rec.Status {
		case StatusPut:
			return decideHeld(k, deleteAfter)
		case StatusConfirmed:
			return Remove
		}
	}
	if !f.Complete {
		return Wait
	}
	if !k.HaveSum {
		return Hash
	}
	if rec != nil && rec.Name == name && rec.SHA256 == k.Sum && (rec.Status == StatusPut || rec.Status == StatusConfirmed) {
		return Touch
	}
	if !k.HaveLatest {
		return AskLatest
	}
	if k.Latest.Found && k.Latest.SHA256 == k.Sum {
		return Same
	}
	return Put
}

// decideHeld decides for a file put and unchanged since.
func decideHeld(k Known, deleteAfter int) Action {
	switch {
	case deleteAfter <= 0:
		return Idle
	case !k.HaveHeld:
		return AskHeld
	case k.Held >= deleteAfter:
		return Remove
	}
	return Wait
}

// Complete reports whether a file of the given mtime counts as
// completely written at now: an inotify close-after-write or rename
// event saw it with these very size and mtime (closed), or nothing has
// written to it for settle. It also returns when to look again if not.
func Complete(f File, closed bool, now time.Time, settle time.Duration) (bool, time.Time) {
	if closed {
		return true, time.Time{}
	}
	stable := time.Unix(0, f.MTime).Add(settle)
	if !now.Before(stable) {
		return true, time.Time{}
	}
	return false, stable
}

// Backoff is the wait before try n (1, 2, …) of something that failed
// or must be asked again: min doubling up to max.
func Backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}
