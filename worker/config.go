package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/worker/verp"
	"github.com/bouncer-mail/bouncer/worker/webhook"
)

// EnvVar documents one environment variable the worker reads.
type EnvVar struct {
	Name    string
	Default string // "" when there is none
	Doc     string
}

// EnvVars lists every environment variable `bouncer run` reads, with its
// default: the worker's (FromEnv), the process's (DATABASE_URL, NATS_URL and
// NATS_*, BOUNCER_HTTP_ADDR, BOUNCER_LOG_LEVEL, read by cmd/bouncer), the explain
// page's and the suppression policy's. The README's table and the
// compose-file test are checked against it.
var EnvVars = append([]EnvVar{
	{"DATABASE_URL", DefaultDatabaseURL, "Postgres connection URL"},
	{"NATS_URL", DefaultNATSURL, "NATS server URL(s), comma-separated"},
	{"NATS_CREDS_FILE", "", "NATS credentials file (JWT and NKey seed)"},
	{"NATS_NKEY_FILE", "", "file holding a NATS NKey user seed"},
	{"NATS_TLS_CA", "", "PEM file of CAs trusted for NATS TLS instead of the system pool"},
	{"NATS_TLS_CERT", "", "PEM file of the client certificate for NATS TLS (with NATS_TLS_KEY)"},
	{"NATS_TLS_KEY", "", "PEM file of the client certificate's private key (with NATS_TLS_CERT)"},
	{"BOUNCER_IMAP_URL", "", "bounce mailbox IMAP URL(s), comma-separated (imaps://user@host/INBOX)"},
	{"BOUNCER_IMAP_PASSWORD", "", "IMAP password for URLs that carry none"},
	{"BOUNCER_IMAP_PASSWORD_FILE", "", "file holding the IMAP password (wins over BOUNCER_IMAP_PASSWORD)"},
	{"BOUNCER_IMAP_AUTH", "login", "login, plain, xoauth2 or oauthbearer, for URLs without auth="},
	{"BOUNCER_IMAP_TOKEN_FILE", "", "file holding the OAuth access token (read at each login)"},
	{"BOUNCER_IMAP_TOKEN_COMMAND", "", "command printing the OAuth access token (run at each login)"},
	{"BOUNCER_IMAP_CA_FILE", "", "PEM file of CAs trusted for IMAP instead of the system pool"},
	{"BOUNCER_CONFIG", "", "JSON config file adding mailboxes with their own options"},
	{"BOUNCER_HTTP_ADDR", DefaultHTTPAddr, "address of /healthz, /readyz, /metrics and the explain page (\"off\": none)"},
	{"BOUNCER_HTTP_TOKEN", "", "explain page token, required when BOUNCER_HTTP_ADDR is beyond loopback (read by bouncer run's page)"},
	{"BOUNCER_HTTP_TOKEN_FILE", "", "file holding the explain page token"},
	{"BOUNCER_BATCH_SIZE", strconv.Itoa(DefaultBatchSize), "messages fetched, classified and committed together"},
	{"BOUNCER_BATCH_BYTES", strconv.Itoa(DefaultBatchBytes), "most bytes of mail fetched in one batch"},
	{"BOUNCER_MAX_MESSAGE_SIZE", strconv.Itoa(DefaultMaxMessageSize), "larger messages are quarantined unread"},
	{"BOUNCER_POLL_INTERVAL", DefaultPollInterval.String(), "how often to look for mail when the server has no IDLE"},
	{"BOUNCER_IDLE_REFRESH", DefaultIdleRefresh.String(), "IDLE is restarted (and the mailbox searched) this often"},
	{"BOUNCER_IMAP_TIMEOUT", DefaultIMAPTimeout.String(), "an IMAP command unanswered this long closes the connection"},
	{"BOUNCER_LEASE_TTL", DefaultLeaseTTL.String(), "mailbox lease lifetime; a dead owner is replaced within it plus a third"},
	{"BOUNCER_OWNER", "", "lease owner name (default host name and pid)"},
	{"BOUNCER_BACKOFF_MAX", DefaultBackoffMax.String(), "longest wait between reconnects"},
	{"BOUNCER_STREAM_REPLICAS", "1", "replicas of the BOUNCES stream"},
	{"BOUNCER_STREAM_RETENTION", "limits", "retention of the BOUNCES stream: limits, interest or workqueue"},
	{"BOUNCER_STREAM_MAX_AGE", "0", "drop events older than this from the stream (0 keeps them)"},
	{"BOUNCER_OUTBOX_RETENTION", days(DefaultOutboxRetention), "published events are deleted from the outbox after this (7d, 36h; 0 keeps them)"},
	{"BOUNCER_LOG_LEVEL", "info", "debug, info, warn or error"},

	// The trust policy (TrustFromEnv, package verp).
	{"BOUNCER_TRUST", string(TrustAuto), "which bounces may suppress: verp, sent, any, or auto (verp with keys, else sent when sent_messages has rows, else any)"},
	{"BOUNCER_ERASURE_KEY", "", "key of the hashes that keep erased addresses suppressed (16+ bytes; DELETE /api/v1/subjects/{address})"},
	{"BOUNCER_ERASURE_KEY_FILE", "", "file holding the erasure key (not with BOUNCER_ERASURE_KEY)"},
	{"BOUNCER_VERP_KEYS", "", "VERP keys id:base64secret,... (the first signs, all verify)"},
	{"BOUNCER_VERP_KEYS_FILE", "", "file of VERP keys, one id:base64secret per line"},
	{"BOUNCER_VERP_DOMAIN", "", "the return path's domain (verp encode; decode accepts only it when set)"},
	{"BOUNCER_VERP_LOCAL", verp.DefaultLocal, "the return path's local part before the separator"},
	{"BOUNCER_VERP_SEP", verp.DefaultSep, "the separator between the local part and the token"},

	// The suppression policy (store.PolicyFromEnv).
	{"BOUNCER_SUPPRESS_SCOPE", string(store.ScopeGlobal), "scope of suppressions from bounces: global, or list (the bounce's List-Id; global when it has none)"},
	{"BOUNCER_COMPLAINT_SCOPE", string(store.ScopeGlobal), "scope of suppressions from complaints: global or list"},
	{"BOUNCER_SOFT_THRESHOLD", strconv.Itoa(store.DefaultSoftThreshold), "soft bounces on this many distinct days suppress (0 or off: soft bounces never do)"},
	{"BOUNCER_SOFT_WINDOW", days(store.DefaultSoftWindow), "the days must fall within this window (15d, 360h)"},
	{"BOUNCER_SOFT_EXPIRY", days(store.DefaultSoftExpiry), "a soft suppression expires this long after it is made"},
	{"BOUNCER_SOFT_CATEGORIES", softCategories(), "the categories that count as soft bounces, comma-separated"},
	{"BOUNCER_LIST_HEADERS", strings.Join(classify.DefaultListHeaders, ","), "header fields of the returned original carrying its list id, in order (+NAME,... adds before these)"},
	{"BOUNCER_CAMPAIGN_HEADERS", strings.Join(classify.DefaultCampaignHeaders, ","), "header fields carrying its campaign id, in order (+NAME,... adds before these)"},
	{"BOUNCER_SUBSCRIBER_HEADERS", strings.Join(classify.DefaultSubscriberHeaders, ","), "header fields carrying the platform's subscriber id, in order (+NAME,... adds before these)"},
	{"BOUNCER_MAX_RECIPIENTS", strconv.Itoa(store.DefaultMaxRecipients), "a message listing more failed recipients is recorded but suppresses nothing"},
}, webhookEnvVars()...)

// webhookEnvVars are the webhook intake's variables (package webhook,
// read by FromEnv).
func webhookEnvVars() []EnvVar {
	out := make([]EnvVar, len(webhook.EnvVars))
	for i, v := range webhook.EnvVars {
		out[i] = EnvVar{v.Name, v.Default, v.Doc}
	}
	return out
}

// softCategories is the default of BOUNCER_SOFT_CATEGORIES.
func softCategories() string {
	var names []string
	for _, c := range store.DefaultPolicy().SoftCategories {
		names = append(names, string(c))
	}
	return strings.Join(names, ",")
}

// days writes a whole number of days as store.ParseDuration reads it.
func days(d time.Duration) string { return strconv.Itoa(int(d/(24*time.Hour))) + "d" }

// EnvNames returns the names in EnvVars.
func EnvNames() []string {
	names := make([]string, len(EnvVars))
	for i, v := range EnvVars {
		names[i] = v.Name
	}
	return names
}

// Defaults.
const (
	DefaultDatabaseURL    = "postgres://postgres@127.0.0.1:5432/bouncer?sslmode=disable"
	DefaultNATSURL        = "nats://127.0.0.1:4222"
	DefaultHTTPAddr       = "127.0.0.1:8080"
	DefaultBatchSize      = 500
	DefaultBatchBytes     = 16 << 20
	DefaultMaxMessageSize = 16 << 20
	DefaultPollInterval   = 30 * time.Second
	DefaultIdleRefresh    = 30 * time.Second
	DefaultIMAPTimeout    = 25 * time.Second
	DefaultLeaseTTL       = 20 * time.Second
	DefaultBackoffMax     = 60 * time.Second
	// DefaultOutboxRetention is how long published events stay in the
	// outbox (a delivery log; the rows they describe stay for good).
	DefaultOutboxRetention = 7 * 24 * time.Hour
	// maintenanceInterval is how often the worker expires suppressions
	// and prunes the outbox (and once at start).
	maintenanceInterval = time.Hour
)

// Config is what the worker is told: its mailboxes, batches, timers,
// lease and stream. Where the database and NATS are, the HTTP address and
// the log level are the process's settings: cmd/bouncer reads them and
// hands the worker a pool, a connection and a logger. Fill a Config with
// DefaultConfig, then FromEnv, then flags; then call Validate once.
type Config struct {
	// IMAPURLs are the mailbox URLs from BOUNCER_IMAP_URL or flags.
	IMAPURLs []string
	// Password and PasswordFile apply to URLs without a password.
	Password     string `json:"-"`
	PasswordFile string
	// Auth, TokenFile, TokenCommand and CAFile apply to URLs that do not
	// set their own.
	Auth         string
	TokenFile    string
	TokenCommand string
	CAFile       string
	// ConfigFile is a JSON file of more mailboxes (see FileConfig).
	ConfigFile string

	BatchSize      int
	BatchBytes     int
	MaxMessageSize int
	PollInterval   time.Duration
	IdleRefresh    time.Duration
	IMAPTimeout    time.Duration
	LeaseTTL       time.Duration
	Owner          string
	BackoffMin     time.Duration
	BackoffMax     time.Duration

	Stream StreamConfig

	// Trust is the trust policy: which bounces may suppress.
	Trust TrustConfig

	// Headers name the original's list, campaign and subscriber header
	// fields.
	Headers HeaderConfig

	// Webhooks configures the ESP webhook endpoints (package webhook).
	Webhooks webhook.Config

	// OutboxRetention is how long published events stay in the outbox; 0
	// keeps them.
	OutboxRetention time.Duration

	// Mailboxes is filled by Validate from IMAPURLs and ConfigFile.
	Mailboxes []Mailbox

	// noIdle makes the worker poll even when the server has IDLE (tests).
	noIdle bool
	// maintenanceEvery overrides maintenanceInterval (tests).
	maintenanceEvery time.Duration
}

// StreamConfig is how the BOUNCES stream is created or updated at start.
type StreamConfig struct {
	Replicas  int
	Retention string // limits, interest or workqueue
	MaxAge    time.Duration
}

// DefaultConfig returns the defaults of EnvVars.
func DefaultConfig() Config {
	return Config{
		BatchSize:       DefaultBatchSize,
		BatchBytes:      DefaultBatchBytes,
		MaxMessageSize:  DefaultMaxMessageSize,
		PollInterval:    DefaultPollInterval,
		IdleRefresh:     DefaultIdleRefresh,
		IMAPTimeout:     DefaultIMAPTimeout,
		LeaseTTL:        DefaultLeaseTTL,
		BackoffMin:      time.Second,
		BackoffMax:      DefaultBackoffMax,
		Stream:          StreamConfig{Replicas: 1, Retention: "limits"},
		OutboxRetention: DefaultOutboxRetention,
		Webhooks:        webhook.DefaultConfig(),
	}
}

// FromEnv overrides c with the variables getenv knows.
func (c *Config) FromEnv(getenv func(string) string) error {
	var errs []error
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	num := func(name string, dst *int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a number", name, v))
				return
			}
			*dst = n
		}
	}
	dur := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a duration (30s, 5m)", name, v))
				return
			}
			*dst = d
		}
	}
	if v := getenv("BOUNCER_IMAP_URL"); v != "" {
		c.IMAPURLs = SplitList(v)
	}
	str("BOUNCER_IMAP_PASSWORD", &c.Password)
	str("BOUNCER_IMAP_PASSWORD_FILE", &c.PasswordFile)
	str("BOUNCER_IMAP_AUTH", &c.Auth)
	str("BOUNCER_IMAP_TOKEN_FILE", &c.TokenFile)
	str("BOUNCER_IMAP_TOKEN_COMMAND", &c.TokenCommand)
	str("BOUNCER_IMAP_CA_FILE", &c.CAFile)
	str("BOUNCER_CONFIG", &c.ConfigFile)
	num("BOUNCER_BATCH_SIZE", &c.BatchSize)
	num("BOUNCER_BATCH_BYTES", &c.BatchBytes)
	num("BOUNCER_MAX_MESSAGE_SIZE", &c.MaxMessageSize)
	dur("BOUNCER_POLL_INTERVAL", &c.PollInterval)
	dur("BOUNCER_IDLE_REFRESH", &c.IdleRefresh)
	dur("BOUNCER_IMAP_TIMEOUT", &c.IMAPTimeout)
	dur("BOUNCER_LEASE_TTL", &c.LeaseTTL)
	str("BOUNCER_OWNER", &c.Owner)
	dur("BOUNCER_BACKOFF_MAX", &c.BackoffMax)
	num("BOUNCER_STREAM_REPLICAS", &c.Stream.Replicas)
	str("BOUNCER_STREAM_RETENTION", &c.Stream.Retention)
	dur("BOUNCER_STREAM_MAX_AGE", &c.Stream.MaxAge)
	if v := getenv("BOUNCER_OUTBOX_RETENTION"); v != "" {
		d, err := store.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("BOUNCER_OUTBOX_RETENTION=%q: not a duration (7d, 36h)", v))
		} else {
			c.OutboxRetention = d
		}
	}
	if h, err := HeadersFromEnv(getenv); err != nil {
		errs = append(errs, err)
	} else {
		c.Headers = h
	}
	if err := c.Webhooks.FromEnv(getenv); err != nil {
		errs = append(errs, err)
	}
	if tc, err := TrustFromEnv(getenv); err != nil {
		errs = append(errs, err)
	} else {
		c.Trust = tc
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("worker: config: %w", err)
	}
	return nil
}

// SplitList splits a comma-separated list, dropping blanks.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// FileConfig is the format of the BOUNCER_CONFIG file:
//
//	{"mailboxes": [
//	  {"url": "imaps://bounces@mail.example.com/INBOX",
//	   "password_file": "/run/secrets/imap",
//	   "processed": "Done", "quarantine": "Broken", "not_bounce": "Humans"},
//	  {"url": "imaps://bounces@outlook.office365.com/INBOX",
//	   "auth": "xoauth2", "token_command": "get-token bounces"}
//	]}
//
// Fields given here win over the URL's query options and the environment.
type FileConfig struct {
	Mailboxes []FileMailbox `json:"mailboxes"`
}

// FileMailbox is one mailbox of a FileConfig.
type FileMailbox struct {
	URL          string `json:"url"`
	Password     string `json:"password"`
	PasswordFile string `json:"password_file"`
	Auth         string `json:"auth"`
	TokenFile    string `json:"token_file"`
	TokenCommand string `json:"token_command"`
	CAFile       string `json:"ca_file"`
	Processed    string `json:"processed"`
	Quarantine   string `json:"quarantine"`
	NotBounce    string `json:"not_bounce"`
	// Name is the mailbox's name in Postgres instead of its identity.
	Name string `json:"name"`
}

// Validate checks c and resolves its mailboxes into c.Mailboxes.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		bad("batch size %d: want 1..10000", c.BatchSize)
	}
	if c.MaxMessageSize < 1024 {
		bad("max message size %d: want at least 1024", c.MaxMessageSize)
	}
	if c.BatchBytes < c.MaxMessageSize {
		c.BatchBytes = c.MaxMessageSize
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"poll interval", c.PollInterval}, {"IDLE refresh", c.IdleRefresh}, {"IMAP timeout", c.IMAPTimeout},
		{"lease TTL", c.LeaseTTL}, {"backoff max", c.BackoffMax}} {
		if d.v <= 0 {
			bad("%s %v: must be positive", d.name, d.v)
		}
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = time.Second
	}
	if c.BackoffMin > c.BackoffMax {
		c.BackoffMin = c.BackoffMax
	}
	if c.OutboxRetention < 0 {
		bad("outbox retention %v: must not be negative", c.OutboxRetention)
	}
	switch c.Stream.Retention {
	case "limits", "interest", "workqueue":
	default:
		bad("stream retention %q: want limits, interest or workqueue", c.Stream.Retention)
	}
	if c.Stream.Replicas < 1 || c.Stream.Replicas > 5 {
		bad("stream replicas %d: want 1..5", c.Stream.Replicas)
	}
	if c.Owner == "" {
		host, _ := os.Hostname()
		c.Owner = fmt.Sprintf("%s-%d", host, os.Getpid())
	}

	password := c.Password
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			bad("IMAP password file: %v", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	c.Mailboxes = c.Mailboxes[:0]
	for _, raw := range c.IMAPURLs {
		m, err := ParseMailboxURL(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.inherit(&m, password)
		c.Mailboxes = append(c.Mailboxes, m)
	}
	if c.ConfigFile != "" {
		ms, err := c.readFile(password)
		if err != nil {
			errs = append(errs, err)
		}
		c.Mailboxes = append(c.Mailboxes, ms...)
	}
	if len(c.Mailboxes) == 0 && len(errs) == 0 {
		bad("no mailbox: set BOUNCER_IMAP_URL or BOUNCER_CONFIG")
	}
	seen := map[string]bool{}
	for i := range c.Mailboxes {
		m := &c.Mailboxes[i]
		if err := m.finish(); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[m.Key] {
			bad("mailbox %s listed twice", m.Key)
		}
		seen[m.Key] = true
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("worker: config: %w", err)
	}
	return nil
}

// inherit gives m the process-wide options it does not set itself.
func (c *Config) inherit(m *Mailbox, password string) {
	if m.Password == "" {
		m.Password = password
	}
	if m.Auth == "" {
		m.Auth = strings.ToLower(c.Auth)
	}
	if m.TokenFile == "" && m.TokenCommand == "" {
		m.TokenFile, m.TokenCommand = c.TokenFile, c.TokenCommand
	}
	if m.CAFile == "" {
		m.CAFile = c.CAFile
	}
}

func (c *Config) readFile(password string) ([]Mailbox, error) {
	b, err := os.ReadFile(c.ConfigFile)
	if err != nil {
		return nil, fmt.Errorf("worker: config file: %w", err)
	}
	var fc FileConfig
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return nil, fmt.Errorf("worker: config file %s: %w", c.ConfigFile, err)
	}
	var out []Mailbox
	var errs []error
	for i, fm := range fc.Mailboxes {
		m, err := ParseMailboxURL(fm.URL)
		if err != nil {
			errs = append(errs, fmt.Errorf("config file %s: mailbox %d: %w", c.ConfigFile, i, err))
			continue
		}
		set := func(dst *string, v string) {
			if v != "" {
				*dst = v
			}
		}
		set(&m.Password, fm.Password)
		if fm.PasswordFile != "" {
			b, err := os.ReadFile(fm.PasswordFile)
			if err != nil {
				errs = append(errs, fmt.Errorf("config file %s: mailbox %d: %w", c.ConfigFile, i, err))
				continue
			}
			m.Password = strings.TrimRight(string(b), "\r\n")
		}
		set(&m.Auth, strings.ToLower(fm.Auth))
		if fm.TokenFile != "" || fm.TokenCommand != "" {
			m.TokenFile, m.TokenCommand = fm.TokenFile, fm.TokenCommand
		}
		set(&m.CAFile, fm.CAFile)
		set(&m.Processed, fm.Processed)
		set(&m.Quarantine, fm.Quarantine)
		set(&m.NotBounce, fm.NotBounce)
		set(&m.Name, strings.TrimSpace(fm.Name))
		c.inherit(&m, password)
		out = append(out, m)
	}
	return out, errors.Join(errs...)
}
