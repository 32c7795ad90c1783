// Package migrations holds bouncer's PostgreSQL schema as numbered SQL files
// in goose's format (-- +goose Up / -- +goose Down), embedded in the binary.
// store.Migrate applies them, together with the one migration written in Go
// in package store (version 7, which decompresses outbox payloads, as
// PostgreSQL cannot); nothing else reads them.
//
// Files are never edited once they have landed on main: a change to the
// schema is a new file with the next number.
package migrations

import "embed"

// FS holds the migration files, named NNNNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
