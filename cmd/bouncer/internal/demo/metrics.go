package demo

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Counter returns the sum of the counter name over all its labels in g, 0
// when it has no series yet.
func Counter(g prometheus.Gatherer, name string) int {
	fams, err := g.Gather()
	if err != nil {
		return 0
	}
	total := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			total += m.GetCounter().GetValue()
		}
	}
	return int(total)
}
