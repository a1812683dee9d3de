// Package engine is a site's forwarding engine as a pure, single-threaded
// state machine, in the shape of etcd's raft: the shell feeds it events
// (links up and down, messages received, stores finished, payloads sent,
// local arrivals, queries and fetches asked here, ticks carrying the
// time) through Step, and takes from Ready what to do: messages to send
// per link and lane, payloads to read and ship, payloads to verify and
// store, cursors to persist, answers to deliver. What it needs to know
// about the site (is ID x stored? the arrival log past cursor c) it reads
// through the small Storage interface.
//
// The engine owns the decisions of forwarding: the offer/want/later
// protocol and its windows over the arrival log, claims (a payload
// crosses into a site once), frame assembly and the detection of lost
// messages, flooded queries with their dedupe and reply routes, fetches
// from the nearest holder, and the confirmations behind --wait-sites.
//
// It starts no goroutines, never reads the clock, and does no I/O but
// the reads of Storage; package forward runs it over NATS and Pebble, and
// package forward/sim runs many of them over a simulated network and
// clock, from one seed.
package engine
