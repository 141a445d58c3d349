//go:build linux

package main

import (
	"io"
	"slices"
	"testing"
	"time"
)

func TestParseFlagsScale(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		ns      []int
		size    int64
		poll    time.Duration
		wantErr bool
	}{
		{[]string{"-n", "8"}, []int{8}, 128 << 20, time.Second, false},
		{[]string{"-mode", "scale"}, []int{8, 24, 48}, 4 << 20, 5 * time.Second, false},
		{[]string{"-mode", "scale", "-n", "4", "-size", "1MiB", "-poll", "2s"}, []int{4}, 1 << 20, 2 * time.Second, false},
		{[]string{"-n", "8,24"}, nil, 0, 0, true},                         // a list is for -mode scale
		{[]string{"-mode", "scale", "-systems", "curl"}, nil, 0, 0, true}, // scale runs fleetcast only
		{[]string{"-mode", "scale", "-n", "8,x"}, nil, 0, 0, true},        // not a number
		{[]string{"-mode", "scale", "-idle", "0s"}, nil, 0, 0, true},      // no window
		{[]string{"-mode", "idle"}, nil, 0, 0, true},                      // unknown mode
		{[]string{"-mode", "scale", "-n", "8,300"}, nil, 0, 0, true},      // too many hosts
	} {
		o, err := parseFlags(tt.args, io.Discard)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%v: no error", tt.args)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tt.args, err)
			continue
		}
		if !slices.Equal(o.ns, tt.ns) || o.size != tt.size || o.poll != tt.poll {
			t.Errorf("%v: n %v, size %d, poll %s; want %v, %d, %s", tt.args, o.ns, o.size, o.poll, tt.ns, tt.size, tt.poll)
		}
	}
}
