package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/bouncer-mail/bouncer/worker"
)

func runInject(ctx context.Context, e *env, args []string) error {
	fl := flag.NewFlagSet("inject", flag.ContinueOnError)
	fl.SetOutput(e.stderr)
	rawURL := fl.String("imap", e.getenv("BOUNCER_IMAP_URL"), "mailbox URL to APPEND to (default $BOUNCER_IMAP_URL, first one)")
	window := fl.Int("pipeline", 32, "APPENDs in flight at once")
	fl.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: bouncer inject --imap URL FILE|DIR...")
		fmt.Fprintln(e.stderr, "APPENDs each message (unread) to the URL's mailbox; directories are walked for *.eml files,\nskipping directories named private and hidden entries (private/ may hold real bounces).")
		fmt.Fprintln(e.stderr, "The password comes from the URL, $BOUNCER_IMAP_PASSWORD or $BOUNCER_IMAP_PASSWORD_FILE.")
		fl.PrintDefaults()
	}
	if help, err := parseFlags(fl, args); help || err != nil {
		return err
	}
	if *rawURL == "" || fl.NArg() == 0 {
		return fmt.Errorf("%w: inject needs --imap URL and at least one FILE or DIR", errUsage)
	}
	// Resolve the URL the way `bouncer run` does (password, auth, CA).
	cfg := worker.DefaultConfig()
	if err := cfg.FromEnv(e.getenv); err != nil {
		return fmt.Errorf("%w: inject: %v", errUsage, err)
	}
	cfg.IMAPURLs = worker.SplitList(*rawURL)[:1]
	cfg.ConfigFile = ""
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: inject: %v", errUsage, err)
	}
	m := &cfg.Mailboxes[0]

	files, err := injectFiles(fl.Args())
	if err != nil {
		return fmt.Errorf("inject: %w", err)
	}
	c, err := worker.Dial(ctx, m, cfg.IMAPTimeout, nil)
	if err != nil {
		return fmt.Errorf("inject: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	start := time.Now()
	n, err := appendFiles(c, m.Folder, files, max(1, *window))
	if err != nil && isTryCreate(err) && n == 0 {
		if err = c.Create(m.Folder, nil).Wait(); err == nil {
			n, err = appendFiles(c, m.Folder, files, max(1, *window))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("inject: %d of %d appended: %w", n, len(files), err)
	}
	c.Logout().Wait()
	fmt.Fprintf(e.stdout, "appended %d message(s) to %s in %v\n", n, m.Key, time.Since(start).Round(time.Millisecond))
	return nil
}

func isTryCreate(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && ie.Code == imap.ResponseCodeTryCreate
}

// injectFiles expands the arguments: files as given, directories walked for
// *.eml files, in name order. The walk does not enter directories named
// "private" or starting with "." (a gitignored private/ may hold real
// bounces with personal data, next to the shareable ones), nor take
// hidden files; an argument naming one is taken as given.
func injectFiles(args []string) ([]string, error) {
	var out []string
	for _, arg := range args {
		st, err := os.Stat(arg)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, arg)
			continue
		}
		var found []string
		err = filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != arg && skipInWalk(d.Name()) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() && strings.EqualFold(filepath.Ext(p), ".eml") {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

// skipInWalk reports whether a directory walk passes over name: hidden
// entries and directories called private.
func skipInWalk(name string) bool {
	return strings.HasPrefix(name, ".") || strings.EqualFold(name, "private")
}

// appendFiles APPENDs files to folder, keeping up to window commands in
// flight (pipelining, RFC 3501 §5.5), and returns how many were stored.
func appendFiles(c *imapclient.Client, folder string, files []string, window int) (int, error) {
	var inflight []*imapclient.AppendCommand
	done := 0
	waitOne := func() error {
		cmd := inflight[0]
		inflight = inflight[1:]
		if _, err := cmd.Wait(); err != nil {
			return err
		}
		done++
		return nil
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return done, err
		}
		raw = worker.ToCRLF(raw)
		cmd := c.Append(folder, int64(len(raw)), nil)
		if _, err := cmd.Write(raw); err != nil {
			cmd.Close()
			return done, fmt.Errorf("%s: %w", f, err)
		}
		if err := cmd.Close(); err != nil {
			return done, fmt.Errorf("%s: %w", f, err)
		}
		inflight = append(inflight, cmd)
		if len(inflight) >= window {
			if err := waitOne(); err != nil {
				return done, err
			}
		}
	}
	for len(inflight) > 0 {
		if err := waitOne(); err != nil {
			return done, err
		}
	}
	return done, nil
}
