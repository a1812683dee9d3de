// Package forward is the shell that runs a site's forwarding engine
// (package forward/engine) over NATS and Pebble: the links, dialed and
// accepted, with their handshake, lanes, rate limits and liveness; the
// arrival log and the per-link cursors in Pebble; the loop that feeds the
// engine its events and carries out what it decides (publish, read and
// ship payloads, verify and store what arrives, persist cursors); and the
// lookups, fetches and confirmations the site asks of the federation.
// Every forwarding decision is the engine's; forward stores no bytes
// itself (it calls chunk and naming).
package forward
