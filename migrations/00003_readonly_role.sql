-- The read-only role for dashboards. It is NOLOGIN: give it to login roles
-- with `GRANT bouncer_readonly TO grafana;`. Creating a role needs
-- CREATEROLE (or superuser); when the migrating user has neither, this
-- migration only grants to a role that already exists, and an operator runs
-- deploy/readonly.sql once as a privileged user.

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bouncer_readonly') THEN
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
            BEGIN
                CREATE ROLE bouncer_readonly NOLOGIN;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- created at the same moment by a migration of another database
            END;
        ELSE
            RAISE NOTICE 'role bouncer_readonly is missing and % may not create it: run deploy/readonly.sql', current_user;
        END IF;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'bouncer_readonly') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO bouncer_readonly', current_database());
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO bouncer_readonly', current_schema());
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO bouncer_readonly', current_schema());
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO bouncer_readonly', current_schema());
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'bouncer_readonly') THEN
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE SELECT ON TABLES FROM bouncer_readonly', current_schema());
        EXECUTE format('REVOKE SELECT ON ALL TABLES IN SCHEMA %I FROM bouncer_readonly', current_schema());
        EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM bouncer_readonly', current_schema());
        EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM bouncer_readonly', current_database());
    END IF;
END
$$;
-- +goose StatementEnd
