-- The read-only role for bouncer's dashboards, for an operator to run once
-- as a user with CREATEROLE (or a superuser) when the user that runs
-- `bouncer migrate` may not create roles (then migration 00003 only
-- notices). Run it connected to bouncer's database, after `bouncer migrate`,
-- naming the user that runs the migrations:
--
--   psql "postgres://admin@db:5432/bouncer" -v migrator=bouncer -f deploy/readonly.sql
--
-- It is idempotent. The role cannot log in; give it to the dashboards' login:
--
--   CREATE ROLE grafana LOGIN PASSWORD '...' IN ROLE bouncer_readonly;

\set ON_ERROR_STOP on

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bouncer_readonly') THEN
        CREATE ROLE bouncer_readonly NOLOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO bouncer_readonly', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO bouncer_readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO bouncer_readonly;

-- Tables and views that later migrations create belong to the migrating
-- user: grant on them as they come.
\if :{?migrator}
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" IN SCHEMA public GRANT SELECT ON TABLES TO bouncer_readonly;
\else
\echo 'readonly.sql: -v migrator=USER not given: rerun this file after each bouncer migrate'
\endif
