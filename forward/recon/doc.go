// Package recon owns set reconciliation of a site's inventory: the
// incrementally kept rateless IBLT table, the difference estimator, and
// the session state machines. It is pure: no I/O, no clock, no
// goroutines. The forwarding engine hosts the sessions and carries their
// bodies in wire.Recon messages; the shell persists the table.
//
// An item is a (kind, ID) pair: a manifest ('m') or a chunk ('c'). Its
// Key is the first 8 bytes of the ID (tweaked for manifests). The table
// keeps the first TableSymbols coded symbols of a Rateless IBLT over the
// keys (Yang, Gilad, Alizadeh, "Practical Rateless Set Reconciliation",
// SIGCOMM 2024), updated by Toggle at every arrival and removal, so a
// session never scans the inventory: it copies a prefix of the symbols,
// and the initiator subtracts the peer's prefix from its own and peels
// the difference. A tug-of-war sketch of 256 counters (Alon, Matias,
// Szegedy) estimates the difference in the first message, so the
// responder sends about as many symbols as the difference needs, and
// identical inventories are confirmed in one round trip.
//
// Sessions:
//
//	initiator                         responder
//	Open{counts, digest, ToW}   →
//	                            ←     InSync            (identical: done)
//	                            ←     Symbols[0,m) in bodies ≤ 64 KiB
//	More{from, n}               →     (only if not decoded yet)
//	                            ←     Symbols[from, from+n)
//	Result{lacks here, manifests
//	       lacking there, totals} →
//	                            ←     Summary{counts, refused, names}
//
// Either side may send Abort instead, which ends the session with an
// error at both. Every body starts with an op byte and a format version;
// decoders are strict (they accept exactly what the encoders write) and
// bounded by the body length.
package recon
