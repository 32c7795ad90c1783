#!/bin/bash
# Run once by the postgres image's entrypoint when it creates the database
# (files in /docker-entrypoint-initdb.d), as POSTGRES_USER on POSTGRES_DB.
#
# Creates the read-only role bouncer_readonly (NOLOGIN; `bouncer migrate`
# grants it SELECT on every table and view, see migrations/00003) and a login
# role for Grafana that is a member of it, with the password read from
# GRAFANA_DB_PASSWORD_FILE (a compose secret). Reads never block writes for
# long: the login's statements time out after 30 s, and its transactions are
# read-only by default.
#
# Environment: POSTGRES_USER, POSTGRES_DB (set by the image),
# GRAFANA_DB_USER (default grafana), GRAFANA_DB_PASSWORD_FILE (required).
set -euo pipefail

user=${GRAFANA_DB_USER:-grafana}
pwfile=${GRAFANA_DB_PASSWORD_FILE:?GRAFANA_DB_PASSWORD_FILE must name the password file of the Grafana login}
[[ -r $pwfile ]] || { echo "10-readonly-login: $pwfile is missing (deploy/gen-secrets)" >&2; exit 1; }
pw=$(<"$pwfile")
pw=${pw%$'\r'}
[[ -n $pw ]] || { echo "10-readonly-login: $pwfile is empty" >&2; exit 1; }

# psql variables (:"user", :'pw') quote the values; DO blocks cannot use
# them, so the role's existence is tested with \gexec.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	-v user="$user" -v pw="$pw" <<'SQL'
SELECT 'CREATE ROLE bouncer_readonly NOLOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bouncer_readonly') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
ALTER ROLE :"user" SET default_transaction_read_only = on;
ALTER ROLE :"user" SET statement_timeout = '30s';
GRANT bouncer_readonly TO :"user";
SQL
