package chaos

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// The comparison finds each kind of loss it is there to find: a missing
// row, a row stored twice, a row the clean run lacks, a row classified
// otherwise, an event not in the stream or in it twice, a suppression
// missing.
func TestCompareFindsLoss(t *testing.T) {
	base := func() *dbState {
		return &dbState{
			messages: 2,
			rows: map[rowKey][]string{
				{sum: [32]byte{1}, address: "a@example.com"}: {"mailbox_unknown/hard/true"},
				{sum: [32]byte{2}, address: "b@example.com"}: {"mailbox_full/soft/false"},
			},
			outbox:       map[string]int{"e1": 1, "e2": 1},
			bounceEvents: map[string]bool{"e1": true, "e2": true},
			suppressions: map[string]int{"a@example.com||hard": 1},
		}
	}
	stream := map[string]int{"e1": 1, "e2": 1}
	for _, tc := range []struct {
		name   string
		change func(chaos *dbState, stream map[string]int)
		check  func(r *result) bool
	}{
		{"nothing", func(*dbState, map[string]int) {}, func(r *result) bool { return !r.bad() }},
		{"row missing", func(c *dbState, _ map[string]int) { delete(c.rows, rowKey{sum: [32]byte{2}, address: "b@example.com"}) },
			func(r *result) bool { return r.rows.missing == 1 && r.bad() }},
		{"row twice", func(c *dbState, _ map[string]int) {
			k := rowKey{sum: [32]byte{1}, address: "a@example.com"}
			c.rows[k] = append(c.rows[k], c.rows[k][0])
		}, func(r *result) bool { return r.rows.duplicate == 1 && r.bad() }},
		{"row extra", func(c *dbState, _ map[string]int) {
			c.rows[rowKey{sum: [32]byte{3}, address: "c@example.com"}] = []string{"unknown/hard/false"}
		}, func(r *result) bool { return r.rows.extra == 1 && r.bad() }},
		{"row different", func(c *dbState, _ map[string]int) {
			c.rows[rowKey{sum: [32]byte{1}, address: "a@example.com"}] = []string{"relay_denied/hard/false"}
		}, func(r *result) bool { return r.differ == 1 && r.bad() }},
		{"event not published", func(_ *dbState, s map[string]int) { delete(s, "e2") },
			func(r *result) bool { return r.events.missing == 1 && r.bad() }},
		{"event twice in the stream", func(_ *dbState, s map[string]int) { s["e1"] = 2 },
			func(r *result) bool { return r.events.duplicate == 1 && r.bad() }},
		{"suppression missing", func(c *dbState, _ map[string]int) { c.suppressions = map[string]int{} },
			func(r *result) bool { return r.suppressions.missing == 1 && r.bad() }},
		{"message not stored", func(c *dbState, _ map[string]int) { c.messages = 1 },
			func(r *result) bool { return r.bad() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chaos, s := base(), map[string]int{}
			for k, v := range stream {
				s[k] = v
			}
			tc.change(chaos, s)
			r := &result{}
			r.compareDB(base(), chaos, s, total(s))
			if !tc.check(r) {
				t.Errorf("compareDB after %s = rows %v, different %d, events %v, suppressions %v, bad %v",
					tc.name, r.rows, r.differ, r.events, r.suppressions, r.bad())
			}
		})
	}
}

// The input is the same for the same seed, and no two messages are equal
// (the store would take the second for the first).
func TestGenerate(t *testing.T) {
	a, err := generate(400, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := generate(400, 7)
	seen := map[[32]byte]bool{}
	for i := range a {
		if a[i].sum != b[i].sum {
			t.Fatalf("generate(400, 7) differs between calls at message %d", i)
		}
		if seen[a[i].sum] {
			t.Fatalf("generate(400, 7): message %d repeats an earlier one", i)
		}
		seen[a[i].sum] = true
	}
	c, _ := generate(400, 8)
	if c[0].sum == a[0].sum && c[1].sum == a[1].sum {
		t.Errorf("generate with seeds 7 and 8 gives the same messages")
	}
}

// The fault schedule has every fault once (and the kills asked for),
// within 5% and 90% of the messages, in order.
func TestSchedule(t *testing.T) {
	plan := schedule(1000, 10, rand.New(rand.NewPCG(1, 2)))
	var kinds []string
	for i, f := range plan {
		kinds = append(kinds, f.kind)
		if f.at < 50 || f.at >= 900 {
			t.Errorf("fault %d (%s) at %d, want within [50, 900)", i, f.kind, f.at)
		}
		if i > 0 && plan[i-1].at > f.at {
			t.Errorf("fault %d at %d comes before one at %d", i, f.at, plan[i-1].at)
		}
	}
	slices.Sort(kinds)
	want := []string{"dovecot", "kill", "kill", "kill", "kill", "kill", "kill", "kill", "kill", "kill", "kill", "nats", "postgres", "uidvalidity"}
	if !slices.Equal(kinds, want) {
		t.Errorf("schedule(1000, 10) = %v, want %v", kinds, want)
	}
}
