// Package forward owns the links between sites: the map-free forwarding
// rule (what arrives on one link is dropped if already known, otherwise
// stored and passed on over every other link), the arrival log and the
// per-link cursors, the link protocol over NATS, the per-link pump and
// receiver, and the decisions they take. The decisions are pure functions
// over small values (decide.go), tested by tables; the link loop only
// moves bytes. Storage is reached through the chunk and naming packages;
// forward stores no bytes itself.
package forward
