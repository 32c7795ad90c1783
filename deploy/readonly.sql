-- The read-only role for bouncer's dashboards, for an operator to run once
-- as a user with CREATEROLE (or a superuser) when the user that runs
-- `bouncer migrate` may not create roles. Run it connected to bouncer's
-- database, after `bouncer migrate`:
--
--   psql "postgres://admin@db:5432/bouncer" -f deploy/readonly.sql
--
-- It is idempotent. The role cannot log in; give it to the dashboards' login:
--
--   CREATE ROLE grafana LOGIN PASSWORD '...' IN ROLE bouncer_readonly;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bouncer_readonly') THEN
        CREATE ROLE bouncer_readonly NOLOGIN;
    END IF;
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO bouncer_readonly', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO bouncer_readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO bouncer_readonly;

-- Tables and views that later migrations create. Run as the user that runs
-- `bouncer migrate` (the owner of the objects), e.g. with SET ROLE:
--   SET ROLE bouncer;   -- the migrating user
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO bouncer_readonly;
