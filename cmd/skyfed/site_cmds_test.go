package main

import (
	"errors"
	"testing"
	"time"
)

func TestTestClockOffsetEnv(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want time.Duration
		bad  bool
	}{
		{"", 0, false},
		{"10m", 10 * time.Minute, false},
		{"-10m", -10 * time.Minute, false},
		{"10", 0, true},
		{"ten minutes", 0, true},
	} {
		t.Setenv(testClockOffsetEnv, tc.env)
		got, err := testClockOffset()
		var exit *ExitError
		switch {
		case tc.bad && !(errors.As(err, &exit) && exit.Code == exitUsage):
			t.Errorf("%s=%q: %v, want a usage error", testClockOffsetEnv, tc.env, err)
		case !tc.bad && (err != nil || got != tc.want):
			t.Errorf("%s=%q: %v, %v; want %v", testClockOffsetEnv, tc.env, got, err, tc.want)
		}
	}
}
