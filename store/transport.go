package store

import (
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// TransportWarning says why the connection databaseURL describes may cross
// the network unencrypted, or returns "" when it cannot: TLS is off
// (sslmode=disable), or may silently be dropped (sslmode absent, allow or
// prefer, whose plaintext fallback an attacker on the path can force), to
// a host that is not this machine (loopback or a Unix socket). bouncer
// takes the user's sslmode as given; cmd logs this once at start.
func TransportWarning(databaseURL string) string {
	cfg, err := pgconn.ParseConfig(databaseURL)
	if err != nil {
		return "" // the caller reports the bad URL
	}
	type hop struct {
		host  string
		plain bool
	}
	hops := []hop{{cfg.Host, cfg.TLSConfig == nil}}
	for _, f := range cfg.Fallbacks {
		hops = append(hops, hop{f.Host, f.TLSConfig == nil})
	}
	someTLS := false
	for _, h := range hops {
		someTLS = someTLS || !h.plain
	}
	for _, h := range hops {
		if !h.plain || localHost(h.host) {
			continue
		}
		if !someTLS {
			return "sslmode=disable to " + h.host + ": passwords and bounce data cross the network in clear (want sslmode=verify-full)"
		}
		return "sslmode allows a plaintext fallback to " + h.host + " (absent, allow or prefer): an attacker on the path can force it (want sslmode=verify-full)"
	}
	return ""
}

// localHost reports whether host is this machine: a Unix socket directory,
// localhost or a loopback address.
func localHost(host string) bool {
	if strings.HasPrefix(host, "/") || strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
