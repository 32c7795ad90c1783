package store_test

import (
	"testing"

	"github.com/bouncer-mail/bouncer/store"
)

// BenchmarkReview measures the suppressions page's queries on 20,000
// suppressions (one hard bounce each, 50 domains, one rule): a first page,
// a domain's first page, the count the page shows, and a bulk preview.
func BenchmarkReview(b *testing.B) {
	f := newFixture(b, store.Policy{})
	seq := 0
	for range 40 {
		f.save(benchMessages(&seq, 500, false)...)
	}
	if n := f.n(`SELECT count(*) FROM suppressions`); n != 20000 {
		b.Fatalf("seeded %d suppressions, want 20000", n)
	}
	// As autovacuum would soon: the planner needs the tables' statistics.
	f.exec(`ANALYZE`)
	ctx := b.Context()
	for _, bc := range []struct {
		name string
		run  func() error
	}{
		{"page", func() error { _, _, err := f.db.SearchSuppressions(ctx, store.ReviewFilter{}); return err }},
		{"domain", func() error {
			_, _, err := f.db.SearchSuppressions(ctx, store.ReviewFilter{Query: "example7.com"})
			return err
		}},
		{"count", func() error { _, err := f.db.CountSuppressions(ctx, store.ReviewFilter{}); return err }},
		{"preview", func() error {
			_, err := f.db.PreviewBulkUndo(ctx, store.BulkSelect{Rule: "test-mailbox_unknown"})
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if err := bc.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
