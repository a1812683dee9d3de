package wire

import "strings"

// The NATS subject scheme of links. It is a security invariant: a site's
// NATS server lets a dialing peer publish only under its own pair's "up"
// subjects and subscribe only to its pair's "dn" subjects, so a peer can
// never speak as another site. Every part of skyfed that names a link
// subject (the links, the server's permissions, the test lab's lying
// peer) takes it from here.
//
//	sf.<dialer>.<acceptor>.up.hello             dialer → acceptor: handshake start
//	sf.<dialer>.<acceptor>.up.<lane>            dialer → acceptor
//	sf.<dialer>.<acceptor>.dn.<lane>            acceptor → dialer
//
// with <lane> one of ctl, man, look, bulk.

const subjectRoot = "sf"

// Pair names the subjects of one link: the site that dials and the site
// it dials.
type Pair struct {
	Dialer, Acceptor string
}

func (p Pair) prefix() string { return subjectRoot + "." + p.Dialer + "." + p.Acceptor }

// Up is the subject prefix the dialer publishes on.
func (p Pair) Up() string { return p.prefix() + ".up" }

// Down is the subject prefix the acceptor publishes on.
func (p Pair) Down() string { return p.prefix() + ".dn" }

// Hello is where the dialer announces itself.
func (p Pair) Hello() string { return p.Up() + ".hello" }

// UpLane is the dialer-to-acceptor subject of a lane.
func (p Pair) UpLane(l Lane) string { return p.Up() + "." + l.Subject() }

// DownLane is the acceptor-to-dialer subject of a lane.
func (p Pair) DownLane(l Lane) string { return p.Down() + "." + l.Subject() }

// HelloWildcard is the subscription an acceptor uses to hear hellos of
// every dialer.
func HelloWildcard(acceptor string) string {
	return Pair{Dialer: "*", Acceptor: acceptor}.Hello()
}

// DialerOfHello returns the dialer named by a hello subject.
func DialerOfHello(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, subjectRoot+".")
	dialer, _, dotted := strings.Cut(rest, ".")
	if !ok || !dotted || dialer == "" {
		return "", false
	}
	return dialer, true
}

// Permissions returns what a dialer's NATS user may publish and subscribe
// to on the acceptor's server: its own pair's subjects and nothing else.
func (p Pair) Permissions() (publish, subscribe []string) {
	return []string{p.Up() + ".>"}, []string{p.Down() + ".>"}
}

var laneSubjects = [...]string{LaneControl: "ctl", LaneManifest: "man", LaneLookup: "look", LaneBulk: "bulk"}

// Lanes lists every lane, in priority order.
var Lanes = []Lane{LaneControl, LaneManifest, LaneLookup, LaneBulk}

// Subject is the lane's last subject token.
func (l Lane) Subject() string {
	if l.Valid() {
		return laneSubjects[l]
	}
	return "invalid"
}
