-- Database roles for the exchange service (psql script; PostgreSQL 15+, psql 15+ for \getenv).
--
-- Two roles, so the running service can never rewrite history:
--
--   exchange_owner  owns the `exchange` schema and every table in it; runs the migrations
--                   (`exchange init`, as the compose `migrate` service / the Kubernetes Job).
--                   Never used by the running service: a table owner can disable triggers.
--   exchange_app    the runtime role of every replica: SELECT/INSERT/UPDATE/DELETE on the
--                   tables, USAGE on the sequences, except
--                     audit_event         SELECT, INSERT, and UPDATE of the seal columns
--                                         (sequence, previous_hash, hash) only: the sealer
--                                         sets them once and the append-only trigger refuses
--                                         anything else;
--                     audit_checkpoint    SELECT, INSERT (its trigger refuses every UPDATE);
--                     audit_event_entity  SELECT, INSERT;
--                     alembic_version     SELECT (the CLI checks the schema revision);
--                   and never DELETE or TRUNCATE on the audit tables, nor TRUNCATE,
--                   REFERENCES or TRIGGER anywhere, nor CREATE in any schema.
--
-- Run once per database, as a superuser (the compose stack mounts it as a postgres init
-- script, which runs with POSTGRES_USER against POSTGRES_DB). Idempotent: running it again
-- resets the two passwords and re-applies every grant. By hand, e.g. on a managed server:
--
--   EXCHANGE_DB_OWNER_PASSWORD=... EXCHANGE_DB_APP_PASSWORD=... \
--     psql -v ON_ERROR_STOP=1 -h HOST -U postgres -d exchange -f infra/postgres/roles.sql
--
-- The passwords end up in the service's connection URLs: keep them URL-safe
-- (e.g. `openssl rand -hex 24`) or percent-encode them there.
--
-- AFTER EVERY MIGRATION THAT CREATES A TABLE the runtime role must be narrowed again:
-- default privileges cannot make per-table exceptions, so a new audit table would arrive
-- with DELETE (and any table with table-wide UPDATE) for exchange_app. That is what
-- exchange.restrict_runtime_privileges() below does; infra/bin/exchange-migrate (the
-- migration step of compose and Kubernetes) calls it right after `exchange init`, and when
-- this script runs as a superuser an event trigger also calls it inside the migration's
-- own transaction, so there is no window at all. By hand, as exchange_owner or a superuser:
--
--   SELECT exchange.restrict_runtime_privileges();
--
-- A new append-only table must be added to that function's CASE as well as to the
-- migration that creates it.

\set ON_ERROR_STOP on

-- ---------------------------------------------------------------- the passwords
\getenv owner_password EXCHANGE_DB_OWNER_PASSWORD
\getenv app_password EXCHANGE_DB_APP_PASSWORD
\if :{?owner_password}
\else
\set owner_password ''
\endif
\if :{?app_password}
\else
\set app_password ''
\endif
SELECT length(:'owner_password') < 12 AS owner_password_missing,
       length(:'app_password') < 12 AS app_password_missing,
       :'owner_password' = :'app_password' AS passwords_equal
\gset
\if :owner_password_missing
DO $$ BEGIN RAISE EXCEPTION 'set EXCHANGE_DB_OWNER_PASSWORD (at least 12 characters) in the environment of psql'; END $$;
\endif
\if :app_password_missing
DO $$ BEGIN RAISE EXCEPTION 'set EXCHANGE_DB_APP_PASSWORD (at least 12 characters) in the environment of psql'; END $$;
\endif
\if :passwords_equal
DO $$ BEGIN RAISE EXCEPTION 'EXCHANGE_DB_OWNER_PASSWORD and EXCHANGE_DB_APP_PASSWORD must differ'; END $$;
\endif

BEGIN;

-- ---------------------------------------------------------------- the roles
SELECT 'CREATE ROLE exchange_owner'
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'exchange_owner')
\gexec
SELECT 'CREATE ROLE exchange_app'
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'exchange_app')
\gexec

ALTER ROLE exchange_owner WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    NOBYPASSRLS INHERIT PASSWORD :'owner_password';
ALTER ROLE exchange_app WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    NOBYPASSRLS NOINHERIT PASSWORD :'app_password';

-- ---------------------------------------------------------------- database and schema
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database())
\gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO exchange_owner, exchange_app', current_database())
\gexec

-- Nobody creates anything in `public` (already so by default since PostgreSQL 15).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The tables live in the schema `exchange`, owned by the migration role. Both roles (and
-- an operator's psql session) find them through the search_path, so the advisory-lock keys
-- the service derives from current_schema() agree between the migration and every replica.
CREATE SCHEMA IF NOT EXISTS exchange AUTHORIZATION exchange_owner;
ALTER SCHEMA exchange OWNER TO exchange_owner;
REVOKE ALL ON SCHEMA exchange FROM PUBLIC;
GRANT USAGE ON SCHEMA exchange TO exchange_app;

SELECT format('ALTER ROLE exchange_owner IN DATABASE %I SET search_path = exchange', current_database())
\gexec
SELECT format('ALTER ROLE exchange_app IN DATABASE %I SET search_path = exchange', current_database())
\gexec
SELECT format('ALTER DATABASE %I SET search_path = exchange, public', current_database())
\gexec

-- ---------------------------------------------------------------- default privileges
-- For every table and sequence exchange_owner creates in `exchange` from now on. These are
-- the general rule only: restrict_runtime_privileges() below narrows the audit tables.
ALTER DEFAULT PRIVILEGES FOR ROLE exchange_owner IN SCHEMA exchange
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO exchange_app;
ALTER DEFAULT PRIVILEGES FOR ROLE exchange_owner IN SCHEMA exchange
    GRANT USAGE, SELECT ON SEQUENCES TO exchange_app;

-- ---------------------------------------------------------------- re-narrowing
-- Sets exchange_app's privileges on every table in `exchange` from scratch (REVOKE ALL,
-- then the grants below), in one transaction: run it after every migration (see the top of
-- this file). Revoking a table privilege also revokes the column privileges. Run as
-- exchange_owner (the grantor of the default privileges) or a superuser.
CREATE OR REPLACE FUNCTION exchange.restrict_runtime_privileges() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.oid::regclass AS rel, c.relname
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'exchange' AND c.relkind IN ('r', 'p')
         ORDER BY c.relname
    LOOP
        EXECUTE format('REVOKE ALL ON TABLE %s FROM exchange_app', t.rel);
        CASE t.relname
            WHEN 'audit_event' THEN
                -- Append-only: insert, read, and seal once (the trigger audit_event_guard
                -- refuses any other change, and any second seal).
                EXECUTE format('GRANT SELECT, INSERT ON TABLE %s TO exchange_app', t.rel);
                EXECUTE format('GRANT UPDATE (sequence, previous_hash, hash) ON TABLE %s TO exchange_app', t.rel);
            WHEN 'audit_checkpoint', 'audit_event_entity' THEN
                EXECUTE format('GRANT SELECT, INSERT ON TABLE %s TO exchange_app', t.rel);
            WHEN 'alembic_version' THEN
                EXECUTE format('GRANT SELECT ON TABLE %s TO exchange_app', t.rel);
            ELSE
                EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO exchange_app', t.rel);
        END CASE;
    END LOOP;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA exchange TO exchange_app;
END
$fn$;

REVOKE ALL ON FUNCTION exchange.restrict_runtime_privileges() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION exchange.restrict_runtime_privileges() TO exchange_owner;

-- ---------------------------------------------------------------- automatic re-narrowing
-- Event triggers need a superuser. Where this script runs without one (some managed
-- services), this part is skipped and infra/bin/exchange-migrate's explicit call is what
-- narrows the privileges, just after each migration commits.
SELECT rolsuper AS is_superuser FROM pg_catalog.pg_roles WHERE rolname = current_user
\gset
\if :is_superuser
CREATE OR REPLACE FUNCTION exchange.restrict_runtime_privileges_after_ddl() RETURNS event_trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF EXISTS (SELECT FROM pg_event_trigger_ddl_commands()
                WHERE schema_name = 'exchange' AND object_type = 'table') THEN
        PERFORM exchange.restrict_runtime_privileges();
    END IF;
END
$fn$;
REVOKE ALL ON FUNCTION exchange.restrict_runtime_privileges_after_ddl() FROM PUBLIC;

DROP EVENT TRIGGER IF EXISTS exchange_restrict_runtime_privileges;
CREATE EVENT TRIGGER exchange_restrict_runtime_privileges ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE')
    EXECUTE FUNCTION exchange.restrict_runtime_privileges_after_ddl();
\else
\echo 'not a superuser: no event trigger; run SELECT exchange.restrict_runtime_privileges() after every migration (infra/bin/exchange-migrate does)'
\endif

-- Tables that already exist (running this script again, or after a migration): narrow now.
SELECT exchange.restrict_runtime_privileges();

COMMIT;
