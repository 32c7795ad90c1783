#!/bin/sh
# may-send.sh ADDRESS [LIST]: may a form system (signup, contact, password
# reset) send mail to ADDRESS? Asks bouncer's HTTP API:
# GET /api/v1/suppressions/check?address=ADDRESS&list=LIST.
#
#   exit 0  yes: not suppressed (prints "yes")
#   exit 1  no: suppressed (prints "no" and bouncer's answer: scope, reason, since)
#   exit 2  cannot tell: bouncer unreachable, no token, not an address (on stderr)
#
# BOUNCER_URL   bouncer run or serve (default http://127.0.0.1:8080)
# BOUNCER_TOKEN its token (BOUNCER_HTTP_TOKEN), when it has one; passed on
#               stdin, so it never shows in the process list
set -eu
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: may-send.sh ADDRESS [LIST]" >&2
	exit 2
fi
url=${BOUNCER_URL:-http://127.0.0.1:8080}
if answer=$(printf 'Authorization: Bearer %s\n' "${BOUNCER_TOKEN:-}" |
	curl --silent --show-error --fail-with-body --max-time 5 --header @- --get \
		--data-urlencode "address=$1" --data-urlencode "list=${2:-}" \
		"$url/api/v1/suppressions/check" 2>&1); then
	:
else
	echo "may-send: cannot tell: $answer" >&2
	exit 2
fi
case $answer in
*'"suppressed":true'*)
	echo "no: $answer"
	exit 1
	;;
*'"suppressed":false'*)
	echo "yes"
	exit 0
	;;
esac
echo "may-send: cannot tell: unexpected answer: $answer" >&2
exit 2
