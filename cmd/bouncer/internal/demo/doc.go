// Package demo holds what `bouncer demo` runs on: sample bounces written for
// the project (every category, several MTA formats, the 553 variants, a
// person's reply, an unreadable message), go-imap's in-memory IMAP server
// to seed them into, an embedded NATS server with JetStream, and the
// summary of what the pipeline made of the samples.
//
// Nothing here is a stand-in: the demo runs the real worker against these
// servers and a real PostgreSQL, and the summary is read back from the
// database, so it shows what `bouncer run` would have recorded.
package demo
