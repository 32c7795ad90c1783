package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// copyData builds the data of a COPY ... FROM STDIN (FORMAT binary) for
// the few column types the store copies. pgx's CopyFrom encodes every
// value through reflection; written by hand the rows of a batch cost a
// fraction of that, and can be built before the round trip that precedes
// them has ended.
type copyData struct{ b []byte }

// pgEpochMicros is 2000-01-01 00:00:00 UTC, PostgreSQL's epoch, in Unix
// microseconds.
const pgEpochMicros = 946684800 * 1000000

// bufPool keeps the big buffers of a batch (COPY data, events) for the
// next: allocated anew each time they were a good part of the garbage
// collector's and the page scavenger's work.
var bufPool sync.Pool

// getBuf returns an empty buffer, of at least size bytes if new.
func getBuf(size int) []byte {
	if p, ok := bufPool.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, size)
}

// putBuf gives b back to bufPool; its holder must not use it any more.
func putBuf(b []byte) {
	if cap(b) >= 4<<10 && cap(b) <= 16<<20 {
		bufPool.Put(&b)
	}
}

func newCopyData(size int) *copyData {
	c := &copyData{b: getBuf(size)}
	c.b = append(c.b, "PGCOPY\n\xff\r\n\x00"...)
	c.b = binary.BigEndian.AppendUint32(c.b, 0) // flags
	c.b = binary.BigEndian.AppendUint32(c.b, 0) // header extension length
	return c
}

func (c *copyData) row(fields int) { c.b = binary.BigEndian.AppendUint16(c.b, uint16(fields)) }

func (c *copyData) null() { c.b = binary.BigEndian.AppendUint32(c.b, 0xFFFFFFFF) }

func (c *copyData) int8(v int64) {
	c.b = binary.BigEndian.AppendUint32(c.b, 8)
	c.b = binary.BigEndian.AppendUint64(c.b, uint64(v))
}

// int8At returns where the next int8 field's value will be, for setInt8.
func (c *copyData) int8At() int { return len(c.b) + 4 }

func (c *copyData) setInt8(at int, v int64) { binary.BigEndian.PutUint64(c.b[at:], uint64(v)) }

func (c *copyData) optInt8(v int64) {
	if v == 0 {
		c.null()
		return
	}
	c.int8(v)
}

func (c *copyData) int4(v int32) {
	c.b = binary.BigEndian.AppendUint32(c.b, 4)
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(v))
}

func (c *copyData) boolean(v bool) {
	c.b = binary.BigEndian.AppendUint32(c.b, 1)
	if v {
		c.b = append(c.b, 1)
	} else {
		c.b = append(c.b, 0)
	}
}

// text appends s, which must be valid UTF-8 without NUL (cleanText).
func (c *copyData) text(s string) {
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(len(s)))
	c.b = append(c.b, s...)
}

func (c *copyData) bytea(v []byte) {
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(len(v)))
	c.b = append(c.b, v...)
}

// timestamptz appends t, cut to microseconds.
func (c *copyData) timestamptz(t time.Time) {
	c.b = binary.BigEndian.AppendUint32(c.b, 8)
	us := t.Unix()*1000000 + int64(t.Nanosecond()/1000)
	c.b = binary.BigEndian.AppendUint64(c.b, uint64(us-pgEpochMicros))
}

// optTimestamptz appends t, or NULL when it is zero.
func (c *copyData) optTimestamptz(t time.Time) {
	if t.IsZero() {
		c.null()
		return
	}
	c.timestamptz(t)
}

// jsonb appends the JSON text j (version 1 of jsonb's binary format).
func (c *copyData) jsonb(j []byte) {
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(len(j)+1))
	c.b = append(c.b, 1)
	c.b = append(c.b, j...)
}

// bytes returns the data with its trailer.
func (c *copyData) bytes() []byte { return binary.BigEndian.AppendUint16(c.b, 0xFFFF) }

// copyIn runs COPY table (columns) FROM STDIN with data (copyData.bytes)
// and returns how many rows it wrote.
func copyIn(ctx context.Context, tx *txn, table string, columns []string, data []byte) (int64, error) {
	var q strings.Builder
	q.WriteString("COPY ")
	q.WriteString(pgx.Identifier{table}.Sanitize())
	q.WriteString(" (")
	for i, col := range columns {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(pgx.Identifier{col}.Sanitize())
	}
	q.WriteString(") FROM STDIN (FORMAT binary)")
	tag, err := tx.copyFrom(ctx, bytes.NewReader(data), q.String())
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
