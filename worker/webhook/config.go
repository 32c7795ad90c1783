package webhook

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bouncer-mail/bouncer/internal/secretenv"
)

// Defaults of Config.
const (
	DefaultMaxBody = 1 << 20
	DefaultMaxAge  = 15 * time.Minute
)

// Config says which providers' endpoints are mounted and with what
// secrets. A provider whose secret (or, for SES, topic list) is empty is
// not mounted: its URL answers 404.
type Config struct {
	// MaxBody is the largest request body read; a larger one is refused
	// with 413.
	MaxBody int64
	// MaxAge is how old a signed timestamp (Mailgun, SendGrid, SNS) may
	// be, and how far in the future.
	MaxAge time.Duration

	// SNSTopics are the SNS topic ARNs whose subscriptions are confirmed
	// and whose notifications are read (Amazon SES).
	SNSTopics []string
	// SendGridKey is the Signed Event Webhook's public key (base64 DER, as
	// SendGrid shows it, or PEM).
	SendGridKey string
	// PostmarkUser and PostmarkPassword are the basic auth credentials of
	// the webhook URL; PostmarkToken a token in the X-Bouncer-Token header
	// or the token query parameter. Each one set is required.
	PostmarkUser     string
	PostmarkPassword string `json:"-"`
	PostmarkToken    string `json:"-"`
	// MailgunKey is the HTTP webhook signing key.
	MailgunKey string `json:"-"`
}

// EnvVar documents one environment variable (as worker.EnvVar).
type EnvVar struct {
	Name, Default, Doc string
}

// EnvVars are the variables FromEnv reads. Each secret may also come from
// a file: NAME_FILE.
var EnvVars = []EnvVar{
	{"BOUNCER_WEBHOOK_MAX_BODY", strconv.Itoa(DefaultMaxBody), "largest webhook request body in bytes (larger: 413)"},
	{"BOUNCER_WEBHOOK_MAX_AGE", DefaultMaxAge.String(), "how old (or early) a webhook's signed timestamp may be"},
	{"BOUNCER_WEBHOOK_SNS_TOPICS", "", "SNS topic ARNs (Amazon SES) whose subscriptions are confirmed and events read, comma-separated; mounts /webhooks/ses"},
	{"BOUNCER_WEBHOOK_SENDGRID_KEY", "", "SendGrid Signed Event Webhook public key (base64); mounts /webhooks/sendgrid"},
	{"BOUNCER_WEBHOOK_SENDGRID_KEY_FILE", "", "file holding the SendGrid public key"},
	{"BOUNCER_WEBHOOK_POSTMARK_USER", "", "basic auth user of the Postmark webhook URL"},
	{"BOUNCER_WEBHOOK_POSTMARK_PASSWORD", "", "basic auth password of the Postmark webhook URL; mounts /webhooks/postmark"},
	{"BOUNCER_WEBHOOK_POSTMARK_PASSWORD_FILE", "", "file holding the Postmark basic auth password"},
	{"BOUNCER_WEBHOOK_POSTMARK_TOKEN", "", "token Postmark sends in X-Bouncer-Token or ?token=; mounts /webhooks/postmark"},
	{"BOUNCER_WEBHOOK_POSTMARK_TOKEN_FILE", "", "file holding the Postmark token"},
	{"BOUNCER_WEBHOOK_MAILGUN_KEY", "", "Mailgun HTTP webhook signing key; mounts /webhooks/mailgun"},
	{"BOUNCER_WEBHOOK_MAILGUN_KEY_FILE", "", "file holding the Mailgun signing key"},
}

// DefaultConfig returns the defaults: nothing mounted.
func DefaultConfig() Config {
	return Config{MaxBody: DefaultMaxBody, MaxAge: DefaultMaxAge}
}

// FromEnv overrides c with the variables getenv knows. A secret comes
// from NAME or from the file NAME_FILE names, not both (package
// secretenv).
func (c *Config) FromEnv(getenv func(string) string) error {
	var errs []error
	secret := func(name string, dst *string) {
		v, err := secretenv.Read(getenv, name, name+"_FILE")
		if err != nil {
			errs = append(errs, err)
		} else if v != "" {
			*dst = v
		}
	}
	if v := getenv("BOUNCER_WEBHOOK_MAX_BODY"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("BOUNCER_WEBHOOK_MAX_BODY=%q: want a number of bytes", v))
		}
		c.MaxBody = n
	}
	if v := getenv("BOUNCER_WEBHOOK_MAX_AGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("BOUNCER_WEBHOOK_MAX_AGE=%q: want a duration (15m)", v))
		}
		c.MaxAge = d
	}
	for _, t := range strings.Split(getenv("BOUNCER_WEBHOOK_SNS_TOPICS"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.SNSTopics = append(c.SNSTopics, t)
		}
	}
	secret("BOUNCER_WEBHOOK_SENDGRID_KEY", &c.SendGridKey)
	if v := getenv("BOUNCER_WEBHOOK_POSTMARK_USER"); v != "" {
		c.PostmarkUser = v
	}
	secret("BOUNCER_WEBHOOK_POSTMARK_PASSWORD", &c.PostmarkPassword)
	secret("BOUNCER_WEBHOOK_POSTMARK_TOKEN", &c.PostmarkToken)
	secret("BOUNCER_WEBHOOK_MAILGUN_KEY", &c.MailgunKey)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.Validate()
}

// Validate refuses settings that cannot work.
func (c *Config) Validate() error {
	if (c.PostmarkUser == "") != (c.PostmarkPassword == "") {
		return errors.New("BOUNCER_WEBHOOK_POSTMARK_USER and BOUNCER_WEBHOOK_POSTMARK_PASSWORD go together")
	}
	if c.SendGridKey != "" {
		if _, err := parseECDSAKey(c.SendGridKey); err != nil {
			return fmt.Errorf("BOUNCER_WEBHOOK_SENDGRID_KEY: %w", err)
		}
	}
	for _, t := range c.SNSTopics {
		if !strings.HasPrefix(t, "arn:") {
			return fmt.Errorf("BOUNCER_WEBHOOK_SNS_TOPICS: %q is not a topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)", t)
		}
	}
	return nil
}

// Secrets are the values of c that must never be logged.
func (c *Config) Secrets() []string {
	var out []string
	for _, s := range []string{c.PostmarkPassword, c.PostmarkToken, c.MailgunKey} {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Enabled reports whether any provider is configured.
func (c *Config) Enabled() bool {
	return len(c.SNSTopics) > 0 || c.SendGridKey != "" || c.PostmarkPassword != "" || c.PostmarkToken != "" || c.MailgunKey != ""
}
