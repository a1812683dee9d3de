package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Goals of `skyfed bench wan`.
const (
	wanGoodputGoal    = 0.9 // skyfed's goodput ÷ TCP's, every hop, at least
	wanCompletionGoal = 1.1 // completion ÷ the pipelined bound, at most
)

// Completion is the completion time ÷ the pipelined bound.
func (r *WANResult) CompletionRatio() float64 {
	return ratio(r.Completion.Seconds(), r.Bound.Seconds())
}

// Pass reports whether every goal of the run was met.
func (r *WANResult) Pass() bool {
	ok := r.CompletionRatio() > 0 && r.CompletionRatio() <= wanCompletionGoal
	for _, h := range r.Hops {
		ok = ok && h.Ratio() >= wanGoodputGoal
	}
	if r.Sat != nil {
		ok = ok && r.Sat.NamesFirst() && r.Sat.NoTimeouts()
	}
	return ok
}

// WriteTable prints the run as one table with its goal lines.
func (r *WANResult) WriteTable(w io.Writer) error {
	var sb strings.Builder
	c, m := r.Cfg, r.Machine
	fmt.Fprintf(&sb, "skyfed bench wan: %s of random data as %d objects (%d chunks) put at s0 of a line of %d site processes\n",
		c.Size, r.Objects, r.Chunks, c.Sites)
	fmt.Fprintf(&sb, "links:    lab proxy at %s, %s round trip each (one-way delay as a pipe), TLS on\n", rateText(c.Rate), c.RTT)
	fmt.Fprintf(&sb, "machine:  %d cores, %s %s; load %s at start, %s at end (1-min average)\n\n", m.Cores, m.GoVersion, m.Platform, m.LoadStart, m.LoadEnd)
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "hop\tTCP MB/s\tskyfed MB/s\tskyfed÷TCP\twire÷raw\ttimeouts\tduplicates\tgoal\t")
	for _, h := range r.Hops {
		fmt.Fprintf(tw, "%s→%s\t%.2f\t%.2f\t%.3f\t%.4f\t%d\t%d\t%s\t\n", h.From, h.To, h.TCP.MBps(), h.Skyfed.MBps(), h.Ratio(),
			ratio(float64(h.WireBytes), float64(h.RawBytes)), h.Timeouts, h.Duplicates, passMiss(h.Ratio() >= wanGoodputGoal, "≥ 0.9×"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	hops := len(r.Hops)
	fmt.Fprintf(&sb, "\ncompletion at s%d: %.2f s; pipelined bound (size/rate + %d·chunk/rate + %d·RTT/2) %.2f s at the TCP rate measured, %.2f s at the rate set; %.3f× and %.3f×\n",
		hops, r.Completion.Seconds(), hops-1, hops, r.Bound.Seconds(), r.NominalBound.Seconds(), r.CompletionRatio(),
		ratio(r.Completion.Seconds(), r.NominalBound.Seconds()))
	for _, h := range r.Hops {
		fmt.Fprintf(&sb, "%s goodput %s→%s: skyfed %.2f MB/s ÷ TCP %.2f MB/s = %.3f (goal ≥ %.1f)\n", passFail(h.Ratio() >= wanGoodputGoal),
			h.From, h.To, h.Skyfed.MBps(), h.TCP.MBps(), h.Ratio(), wanGoodputGoal)
	}
	fmt.Fprintf(&sb, "%s completion: %.3f× the pipelined bound at the TCP rate measured (goal ≤ %.1f)\n", passFail(r.CompletionRatio() > 0 && r.CompletionRatio() <= wanCompletionGoal),
		r.CompletionRatio(), wanCompletionGoal)
	if s := r.Sat; s != nil {
		fmt.Fprintf(&sb, "\nsatellite link (%s, %s round trip, no max_rate set): %s of bulk, then a small object put at s0\n", rateText(s.Rate), s.RTT, s.Bulk)
		lookup := "no answer"
		if s.Lookup > 0 {
			lookup = fmt.Sprintf("%.2f s", s.Lookup.Seconds())
		}
		fmt.Fprintf(&sb, "  name at the satellite after %.2f s; fresh lookup at the satellite answered after %s; bulk done after %.2f s\n",
			s.Name.Seconds(), lookup, s.BulkLeft.Seconds())
		fmt.Fprintf(&sb, "  frame timeouts %d; duplicates %d; payload bytes sent ÷ bytes put %.2f (above 1: sent again)\n",
			s.Timeouts, s.Duplicates, s.SentRatio())
		fmt.Fprintf(&sb, "%s names first: name after %.2f s ≤ %.2f× the bulk's %.2f s\n", passFail(s.NamesFirst()), s.Name.Seconds(), satNameShare, s.BulkLeft.Seconds())
		fmt.Fprintf(&sb, "%s frame timeouts on the satellite link: %d, payload bytes sent ÷ put %.2f (goal 0, and nothing sent again: ≤ %.2f)\n",
			passFail(s.NoTimeouts()), s.Timeouts, s.SentRatio(), satResendGoal)
	}
	sb.WriteString("\n")
	for i, n := range []string{
		"TCP = one plain TCP stream of " + ByteSize(min(int64(c.Size), int64(c.Rate)*10)).String() + " through the hop's own proxy (pointed at a sink for the dial), before the put; goodput from its first write to the sink's last read.",
		"skyfed = bytes the hop's proxy carried toward the receiver (TLS, NATS framing, offers included) while the hop carried the run's data, sampled every 20 ms. wire÷raw = those bytes ÷ raw payload bytes the sender sent.",
		"completion = the first put's start to the far site holding every chunk and version; the bound's rate is the slowest hop's TCP goodput above (what the proxy delivers on this machine in this run; the rate set is shown for reference). timeouts = skyfed_link_frame_timeouts_total of both ends (payloads given up for silence); duplicates = payloads that arrived twice.",
	} {
		sb.WriteString(wrap(fmt.Sprintf("[%d] %s", i+1, n), 100, "    "))
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// satResendGoal is the most payload bytes the satellite link may carry
// per byte put: no payload sent twice (a site whose status has no
// frame-timeout counter, an older one, is judged by this alone).
const satResendGoal = 1.01

// SentRatio is the payload bytes sent on the satellite link ÷ bytes put.
func (s *WANSat) SentRatio() float64 { return ratio(float64(s.Sent), float64(s.Put)) }

// NoTimeouts reports whether the satellite link gave up no payload.
func (s *WANSat) NoTimeouts() bool { return s.Timeouts == 0 && s.SentRatio() <= satResendGoal }

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}
