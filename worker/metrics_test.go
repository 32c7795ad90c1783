package worker

import (
	"errors"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// gaugeValue reads a gauge without the testutil package (and the module
// it would add to go.mod).
func gaugeValue(t *testing.T, g interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// bouncer_mailbox_ready follows the mailbox's state as /readyz reports it.
func TestMailboxReadyGauge(t *testing.T) {
	m := newMetrics()
	b := statusBoard{m: map[string]*status{}, ready: m.mailboxReady}
	const key = "bounces@127.0.0.1:1143/INBOX"
	for _, c := range []struct {
		state string
		want  float64
	}{
		{stateStarting, 0},
		{stateConnecting, 0},
		{stateCatchingUp, 1},
		{stateIdle, 1},
		{stateConnecting, 0}, // the session failed: backing off
		{stateStandby, 1},    // another worker holds the lease
		{stateIdle, 1},
		{stateStopped, 0},
	} {
		b.set(key, c.state, errors.New("x"))
		if got := gaugeValue(t, m.mailboxReady.WithLabelValues(key)); got != c.want {
			t.Errorf("after state %s: bouncer_mailbox_ready = %v, want %v", c.state, got, c.want)
		}
		if _, ready := b.snapshot(); ready != (c.want == 1) {
			t.Errorf("after state %s: /readyz ready = %v, gauge %v", c.state, ready, c.want)
		}
	}
}
