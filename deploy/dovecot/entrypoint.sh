#!/bin/bash
# Entry point of bouncer's staging Dovecot (see dovecot.conf).
#
#   entrypoint.sh               write the users file and the TLS files, then
#                               run Dovecot in the foreground
#   entrypoint.sh healthcheck   exit 0 when IMAP answers with its greeting
#
# Environment, with defaults:
#   IMAP_BOUNCE_USER=bounces   IMAP_BOUNCE_PASSWORD_FILE=/run/secrets/imap_password
#   IMAP_TEST_USER=test        IMAP_TEST_PASSWORD_FILE=/run/secrets/imap_test_password
#       The two users. Passwords only come from files (compose secrets): they
#       are stored hashed (SHA512-CRYPT) in the users file, never in the image.
#   IMAP_TLS_NAMES=dovecot,localhost
#       DNS names of the self-signed certificate made when no certificate is
#       in DOVECOT_TLS_DIR (127.0.0.1 is always added).
# The paths, for running this script outside the image (the tests do):
#   DOVECOT_CONFIG=/etc/dovecot/dovecot.conf  DOVECOT_USERS_FILE=/etc/dovecot/users
#   DOVECOT_TLS_DIR=/etc/dovecot/tls          IMAP_CA_EXPORT_DIR=/run/imap-ca
#   DOVECOT_MAIL_ROOT=/srv/mail               DOVECOT_MAIL_OWNER=vmail:vmail
#   IMAP_HEALTH_PORT=143
set -euo pipefail

conf=${DOVECOT_CONFIG:-/etc/dovecot/dovecot.conf}
users=${DOVECOT_USERS_FILE:-/etc/dovecot/users}
tls=${DOVECOT_TLS_DIR:-/etc/dovecot/tls}
ca_export=${IMAP_CA_EXPORT_DIR:-/run/imap-ca}
mail_root=${DOVECOT_MAIL_ROOT:-/srv/mail}
mail_owner=${DOVECOT_MAIL_OWNER:-vmail:vmail}

die() {
	echo "dovecot-entrypoint: $*" >&2
	exit 1
}

healthcheck() {
	local greeting
	{ exec 3<>"/dev/tcp/127.0.0.1/${IMAP_HEALTH_PORT:-143}"; } 2>/dev/null || exit 1
	IFS= read -r -t 5 greeting <&3 || exit 1
	[[ $greeting == "* OK"* ]] || exit 1
	[[ -s $ca_export/cert.pem ]] || exit 1
}

# user_line NAME PASSWORD_FILE prints the passwd-file line of a user.
user_line() {
	local name=$1 file=$2 pw hash
	[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "user name \"$name\": want letters, digits, . _ -"
	[[ -r $file ]] || die "$name: password file $file is missing (docker-compose.yml secrets; deploy/gen-secrets)"
	pw=$(<"$file")
	pw=${pw%$'\r'}
	[[ -n $pw ]] || die "$name: password file $file is empty"
	hash=$(printf '%s' "$pw" | openssl passwd -6 -stdin) || die "$name: cannot hash the password"
	printf '%s:{SHA512-CRYPT}%s\n' "$name" "$hash"
}

write_users() {
	local tmp
	tmp=$(mktemp "$users.XXXXXX")
	{
		user_line "${IMAP_BOUNCE_USER:-bounces}" "${IMAP_BOUNCE_PASSWORD_FILE:-/run/secrets/imap_password}"
		user_line "${IMAP_TEST_USER:-test}" "${IMAP_TEST_PASSWORD_FILE:-/run/secrets/imap_test_password}"
	} >"$tmp"
	# Read by Dovecot's auth process, which runs as the user dovecot.
	chown root:dovecot "$tmp"
	chmod 0640 "$tmp"
	mv "$tmp" "$users"
}

ensure_tls() {
	mkdir -p "$tls"
	if [[ ! -s $tls/cert.pem || ! -s $tls/key.pem ]]; then
		local names san="" first=""
		IFS=, read -r -a names <<<"${IMAP_TLS_NAMES:-dovecot,localhost}"
		for n in "${names[@]}"; do
			[[ -n $n ]] || continue
			first=${first:-$n}
			san+="DNS:$n,"
		done
		san+="IP:127.0.0.1"
		echo "dovecot-entrypoint: no certificate in $tls: making a self-signed one for $san" >&2
		(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-days 825 -subj "/CN=${first:-localhost}" -addext "subjectAltName=$san" \
			-keyout "$tls/key.pem" -out "$tls/cert.pem" 2>/dev/null) || die "openssl req failed"
		chmod 0644 "$tls/cert.pem"
	fi
	# What clients trust: the self-signed certificate itself. (With a
	# certificate from a real CA, clients need no CA file.)
	mkdir -p "$ca_export"
	install -m 0644 "$tls/cert.pem" "$ca_export/cert.pem"
}

case "${1:-}" in
healthcheck)
	healthcheck
	exit 0
	;;
"") ;;
*)
	# Anything else is a command to run instead (doveadm, a shell...).
	exec "$@"
	;;
esac

write_users
ensure_tls
mkdir -p "$mail_root"
chown "$mail_owner" "$mail_root"
exec dovecot -F -c "$conf"
