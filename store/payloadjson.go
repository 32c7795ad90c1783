package store

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// appendPayload appends the JSON of p as encoding/json writes it (with
// SetEscapeHTML(false)), without a newline. A batch writes a thousand
// events; reflection was a tenth of its client time. payloadjson_test.go
// checks that the bytes are the same as encoding/json's.
func appendPayload(b []byte, p *Payload) ([]byte, error) {
	b = append(b, `{"schema":`...)
	b = strconv.AppendInt(b, int64(p.Schema), 10)
	b = append(b, `,"event_id":`...)
	b = appendJSONString(b, p.EventID)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, p.Type)
	b = append(b, `,"time":`...)
	b, err := appendJSONTime(b, p.Time)
	if err != nil {
		return b, err
	}
	b = append(b, `,"recipient":`...)
	b = appendJSONString(b, p.Recipient)
	b = append(b, `,"domain":`...)
	b = appendJSONString(b, p.Domain)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, p.Status)
	b = append(b, `,"smtp_code":`...)
	b = strconv.AppendInt(b, int64(p.SMTPCode), 10)
	b = append(b, `,"category":`...)
	b = appendJSONString(b, p.Category)
	b = append(b, `,"severity":`...)
	b = appendJSONString(b, p.Severity)
	b = append(b, `,"suppress":`...)
	b = strconv.AppendBool(b, p.Suppress)
	b = append(b, `,"list_id":`...)
	b = appendJSONString(b, p.ListID)
	b = append(b, `,"campaign_id":`...)
	b = appendJSONString(b, p.CampaignID)
	b = append(b, `,"original_message_id":`...)
	b = appendJSONString(b, p.OriginalMessageID)
	b = append(b, `,"diagnostic":`...)
	b = appendJSONString(b, p.Diagnostic)
	b = append(b, `,"mailbox":`...)
	b = appendJSONString(b, p.Mailbox)
	if p.Kind != "" {
		b = append(b, `,"kind":`...)
		b = appendJSONString(b, p.Kind)
	}
	if p.Action != "" {
		b = append(b, `,"action":`...)
		b = appendJSONString(b, p.Action)
	}
	if p.Rule != "" {
		b = append(b, `,"rule":`...)
		b = appendJSONString(b, p.Rule)
	}
	if s := p.Suppression; s != nil {
		b = append(b, `,"suppression":{"id":`...)
		b = strconv.AppendInt(b, s.ID, 10)
		b = append(b, `,"scope":`...)
		b = appendJSONString(b, string(s.Scope))
		b = append(b, `,"list_id":`...)
		b = appendJSONString(b, s.ListID)
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, string(s.Reason))
		if s.BounceID != 0 {
			b = append(b, `,"bounce_id":`...)
			b = strconv.AppendInt(b, s.BounceID, 10)
		}
		b = append(b, `,"created_by":`...)
		b = appendJSONString(b, s.CreatedBy)
		if !s.ExpiresAt.IsZero() {
			b = append(b, `,"expires_at":`...)
			if b, err = appendJSONTime(b, s.ExpiresAt); err != nil {
				return b, err
			}
		}
		if s.RemovedBy != "" {
			b = append(b, `,"removed_by":`...)
			b = appendJSONString(b, s.RemovedBy)
		}
		if s.RemovedWhy != "" {
			b = append(b, `,"removed_why":`...)
			b = appendJSONString(b, s.RemovedWhy)
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// appendJSONTime appends t as time.Time.MarshalJSON does.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		// MarshalJSON's error, for the caller to report.
		_, err := t.MarshalJSON()
		return b, err
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json does without HTML
// escaping: ", \ and control characters escaped, invalid UTF-8 replaced
// by U+FFFD, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
