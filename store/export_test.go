package store

// GoMigrations are the migrations written in Go, for tests that build
// their own goose provider.
var GoMigrations = goMigrations
