package store

// GoMigrations are the migrations written in Go, for tests that build
// their own goose provider.
var GoMigrations = goMigrations

// LockBuckets and LockKeyMax are for the lock tests.

const (
	LockBuckets = lockBuckets
	LockKeyMax  = lockKeyBase + lockBuckets - 1
)
