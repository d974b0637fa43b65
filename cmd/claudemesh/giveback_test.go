package main

import (
	"testing"
	"time"
)

func TestBurstWatch(t *testing.T) {
	start := time.Now()
	w := burstWatch{quietSince: start}
	at := func(n uint64, d time.Duration) bool { return w.over(n, start.Add(d)) }

	if at(burstConns-1, time.Second) || at(burstConns-1, time.Minute) {
		t.Fatalf("%d connections are no burst, yet it says one is over", burstConns-1)
	}
	// Connections that keep coming: the burst is not over.
	n := uint64(burstConns - 1)
	for i := range 5 {
		n += 10
		if at(n, time.Minute+time.Duration(i)*time.Second) {
			t.Fatalf("a burst said over while connections still came (second %d)", i)
		}
	}
	last := time.Minute + 4*time.Second
	if at(n, last+burstQuiet/2) {
		t.Fatalf("a burst said over %v after the last connection", burstQuiet/2)
	}
	if !at(n, last+burstQuiet) {
		t.Fatalf("a burst not said over %v after the last connection", burstQuiet)
	}
	if at(n, last+time.Hour) {
		t.Fatal("one burst said over twice")
	}
	if at(n+10, 2*time.Hour) || at(n+10, 3*time.Hour) {
		t.Fatal("10 connections after a burst said to be one")
	}
	if at(n+10+burstConns, 4*time.Hour) || !at(n+10+burstConns, 4*time.Hour+burstQuiet) {
		t.Fatal("a second burst not said over")
	}
}
