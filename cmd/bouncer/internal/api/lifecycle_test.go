package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/api"
)

type pageBody struct {
	Suppressions []api.Suppression
	Next         string
}

// List with filters, followed page by page.
func TestListPaging(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	for i := range 5 {
		list := ""
		if i%2 == 1 {
			list = "news"
		}
		code, body := f.json("POST", "/api/v1/suppressions", map[string]string{"address": fmt.Sprintf("p%d@example.org", i), "list_id": list, "by": "test"})
		if code != 201 {
			t.Fatalf("add p%d = %d %s", i, code, body)
		}
	}
	var got []string
	path := "/api/v1/suppressions?limit=2"
	for pages := 0; ; pages++ {
		code, body := f.do("GET", path, "", nil)
		p := decode[pageBody](t, "page", body)
		if code != 200 || pages > 3 {
			t.Fatalf("GET %s = %d %s", path, code, body)
		}
		for _, s := range p.Suppressions {
			got = append(got, s.Address)
		}
		if p.Next == "" {
			break
		}
		path = "/api/v1/suppressions?limit=2&after=" + p.Next
	}
	if want := "p0@example.org p1@example.org p2@example.org p3@example.org p4@example.org"; strings.Join(got, " ") != want {
		t.Errorf("pages = %v, want %s", got, want)
	}
	for q, want := range map[string]int{"list=news": 2, "global=true": 3, "domain=EXAMPLE.org": 5, "reason=hard": 0, "since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z": 0} {
		code, body := f.do("GET", "/api/v1/suppressions?"+q, "", nil)
		if p := decode[pageBody](t, q, body); code != 200 || len(p.Suppressions) != want {
			t.Errorf("GET ?%s = %d with %d suppressions, want %d", q, code, len(p.Suppressions), want)
		}
	}
	for q, text := range map[string]string{"limit=0": "?limit=", "after=x": "?after=", "global=maybe": "?global=",
		"since=yesterday": "?since=", "reason=bored": "?reason=", "list=a&global=true": "contradict"} {
		code, body := f.do("GET", "/api/v1/suppressions?"+q, "", nil)
		wantError(t, "GET ?"+q, code, body, 400, text)
	}
}

// Remove needs who and why, closes the record, puts the list membership
// back and writes suppression.removed.
func TestRemove(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	ctx := t.Context()
	if _, err := f.pool(ctx, `INSERT INTO list_members (list_id, address) VALUES ('news', 'ana@example.org')`); err != nil {
		t.Fatal(err)
	}
	code, _ := f.json("POST", "/api/v1/suppressions", map[string]string{"address": "ana@example.org", "by": "test", "reason": "hard"})
	if code != 201 || f.status(ctx, "ana@example.org") != "bounced" {
		t.Fatalf("add = %d, member %s; want 201 and bounced", code, f.status(ctx, "ana@example.org"))
	}
	code, body := f.do("DELETE", "/api/v1/suppressions/ana@example.org?by=support", "", nil)
	wantError(t, "DELETE without why", code, body, 400, "?by=WHO&why=WHY")
	code, body = f.do("DELETE", "/api/v1/suppressions/ana@example.org?by=support&why=confirmed+by+phone", "", nil)
	s := decode[api.Suppression](t, "remove", body)
	if code != 200 || s.RemovedBy != "support" || s.RemovedWhy != "confirmed by phone" || s.RemovedAt == nil {
		t.Errorf("DELETE = %d %s, want the removed record", code, body)
	}
	if st := f.status(ctx, "ana@example.org"); st != "subscribed" {
		t.Errorf("member after remove = %s, want subscribed", st)
	}
	n, err := f.pool(ctx, `SELECT count(*) FROM outbox WHERE subject = 'suppression.removed' AND payload->>'recipient' = 'ana@example.org'`)
	if err != nil || n != 1 {
		t.Errorf("suppression.removed events = %d, %v; want 1", n, err)
	}
	code, body = f.do("DELETE", "/api/v1/suppressions/ana@example.org?by=support&why=again", "", nil)
	wantError(t, "DELETE again", code, body, 404, "not suppressed")
}

// pool runs a statement on the fixture's database and returns the first
// column of its first row as a number (a count), or 0.
func (f *fixture) pool(ctx context.Context, sql string) (int64, error) {
	conn := f.conn(ctx)
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	if rows.Next() && len(rows.FieldDescriptions()) > 0 {
		err = rows.Scan(&n)
	}
	rows.Close()
	return n, firstErr(err, rows.Err())
}

func (f *fixture) status(ctx context.Context, addr string) string {
	var st string
	if err := f.conn(ctx).QueryRow(ctx, `SELECT status FROM list_members WHERE address = $1`, addr).Scan(&st); err != nil {
		f.t.Fatalf("member %s: %v", addr, err)
	}
	return st
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
