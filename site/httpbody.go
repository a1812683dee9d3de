package site

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// bodyError is a failure to read a request's body. It is always the
// client's doing or the network's (a body shorter than its
// Content-Length, a truncated or malformed chunked body, a stall, a
// dropped connection), never the site's, so it is answered 4xx, or not
// at all, and logged at INFO.
type bodyError struct {
	err  error
	idle time.Duration // the idle timeout, when the body stalled past it
}

func (e *bodyError) Error() string {
	if e.timedOut() {
		return fmt.Sprintf("request body stalled for more than %s", e.idle)
	}
	return "read request body: " + e.err.Error()
}

func (e *bodyError) Unwrap() error { return e.err }

func (e *bodyError) timedOut() bool { return e.idle > 0 }

// clientGone reports whether the connection itself is gone, so that no
// answer can reach the client.
func (e *bodyError) clientGone() bool {
	return errors.Is(e.err, syscall.ECONNRESET) || errors.Is(e.err, syscall.EPIPE) || errors.Is(e.err, net.ErrClosed)
}

// idleBody bounds the time a request body may stall: before each read it
// moves the connection's read deadline idle ahead, so the bound is on the
// wait for the client between two successful reads, not on the whole
// upload (a slow but steady client is never cut) nor on the time the
// handler spends storing what it read.
type idleBody struct {
	body      io.ReadCloser
	rc        *http.ResponseController
	idle      time.Duration
	onTimeout func()
	err       error // sticky, as the body it wraps
	eof       bool
}

func newIdleBody(w http.ResponseWriter, r *http.Request, idle time.Duration, onTimeout func()) *idleBody {
	return &idleBody{body: r.Body, rc: http.NewResponseController(w), idle: idle, onTimeout: onTimeout}
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	// Only the server's own writers lack deadlines (tests' recorders);
	// without one the body is read unbounded, as before.
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.body.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		// net/http now watches the connection for the client going away
		// while the handler works (a put's commit, --wait-sites); a
		// deadline left behind would end that watch, and cancel the
		// request, once the handler took longer than idle.
		_ = b.rc.SetReadDeadline(time.Time{})
		b.eof = true
	default:
		be := &bodyError{err: err}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			be.idle = b.idle
			b.onTimeout()
		}
		b.err = be
		return n, be
	}
	return n, err
}

func (b *idleBody) Close() error { return b.body.Close() }

// handled is called when the handler has returned. If it left the body
// unread (a put refused before its upload), net/http reads what is left
// of a small body before it reuses the connection; the deadline bounds
// that read too, so a client stalling there cannot hold the connection.
func (b *idleBody) handled() {
	if !b.eof && b.err == nil {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	}
}
