package store

// GoMigrations are the migrations written in Go, for tests that build
// their own goose provider.
var GoMigrations = goMigrations

// ValidAddress and LockBuckets are for the address tests.
var ValidAddress = validAddress

const (
	LockBuckets = lockBuckets
	LockKeyMax  = lockKeyBase + lockBuckets - 1
)
