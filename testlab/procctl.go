package testlab

import (
	"fmt"
	"slices"

	"github.com/skyfed/skyfed/site"
)

// This file holds the process federation's fault controls beyond kill
// and restart: hangs, trust and link changes, and a shifted clock. Each
// acts the way an operator or a failing machine would: by signal, or by
// editing a site's skyfed.toml, which a running site reloads within 5 s.

// Pause hangs site i's process (SIGSTOP) until Resume; a no-op while it
// is not running.
func (f *ProcessFederation) Pause(i int) error {
	if p := f.Process(i); p != nil {
		return p.Pause()
	}
	return nil
}

// Resume continues site i's process after Pause.
func (f *ProcessFederation) Resume(i int) error {
	if p := f.Process(i); p != nil {
		return p.Resume()
	}
	return nil
}

// SetEnv sets extra environment variables ("K=V") for site i's process
// from its next Start on.
func (f *ProcessFederation) SetEnv(i int, env ...string) {
	f.mu.Lock()
	f.env[i] = slices.Clone(env)
	f.mu.Unlock()
}

// Untrust removes site j from site i's trust store: i refuses j's links
// and what j signed until Trust.
func (f *ProcessFederation) Untrust(i, j int) error {
	if err := site.Untrust(f.Dir(i), f.ID(j)); err != nil {
		return fmt.Errorf("lab: %s untrusts %s: %w", f.ID(i), f.ID(j), err)
	}
	return nil
}

// Trust makes site i trust site j again for the federation's domain.
func (f *ProcessFederation) Trust(i, j int) error {
	f.mu.Lock()
	peer := site.Peer{ID: f.members[j].id, Key: f.members[j].key, Domains: []string{f.opts.Domain}}
	dir := f.members[i].dir
	f.mu.Unlock()
	if err := site.Trust(dir, peer); err != nil {
		return fmt.Errorf("lab: %s trusts %s: %w", f.ID(i), f.ID(j), err)
	}
	return nil
}

// Unlink removes the link between sites i and j from its dialer's config;
// Relink (or SetMaxRate) configures it again through the same proxy.
func (f *ProcessFederation) Unlink(i, j int) error {
	lk, err := f.labLink(i, j)
	if err != nil {
		return err
	}
	if err := site.Unlink(f.Dir(lk.from), f.ID(lk.to)); err != nil {
		return fmt.Errorf("lab: unlink %s→%s: %w", f.ID(lk.from), f.ID(lk.to), err)
	}
	return nil
}

// Relink configures the link between sites i and j again, with the max
// rate it was built with.
func (f *ProcessFederation) Relink(i, j int) error {
	lk, err := f.labLink(i, j)
	if err != nil {
		return err
	}
	return f.SetMaxRate(lk.from, lk.to, f.opts.rateOf(lk.from, lk.to))
}

// RateOf returns the max rate the link between i and j was built with.
func (f *ProcessFederation) RateOf(i, j int) string { return f.opts.rateOf(i, j) }

// Domain returns the domain every site writes under.
func (f *ProcessFederation) Domain() string { return f.opts.Domain }

// Binary returns the path of the skyfed binary the sites run.
func (f *ProcessFederation) Binary() string { return f.bin }

func (l *lab) labLink(i, j int) (*labLink, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.links {
		if x.from == i && x.to == j || x.from == j && x.to == i {
			return x, nil
		}
	}
	return nil, fmt.Errorf("lab: sites %d and %d are not linked", i, j)
}

// NATSAddr returns the address of site i's own NATS server (not a proxy).
func (f *ProcessFederation) NATSAddr(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.members[i].cfg.NATS
}
