# Sourced by .ci/run: a throwaway PostgreSQL server from Debian's packages, on TCP with
# password authentication, run as an unprivileged user (initdb and pg_ctl refuse root).
# external_postgres_start exports DB_USER, DB_PASS, DB_HOST, DB_PORT and DB_NAME.

EXT_PGDATA=${EXT_PGDATA:-/tmp/dbkit-ci-postgres}
EXT_PORT=${EXT_PORT:-55432}
EXT_OS_USER=dbkitci

_pgbin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

_as_server_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u "$EXT_OS_USER" -- "$@"; else "$@"; fi
}

external_postgres_start() {
    if [ -z "$(_pgbin)" ]; then
        echo "Debian's postgresql package is missing: apt-get install postgresql" >&2
        return 1
    fi
    local bin; bin=$(_pgbin)
    if [ "$(id -u)" = 0 ] && ! id "$EXT_OS_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$EXT_OS_USER"
    fi
    external_postgres_stop
    rm -rf "$EXT_PGDATA" && mkdir -p "$EXT_PGDATA" && chmod 700 "$EXT_PGDATA"
    [ "$(id -u)" = 0 ] && chown "$EXT_OS_USER" "$EXT_PGDATA"
    _as_server_user "$bin/initdb" -D "$EXT_PGDATA" -U postgres -E UTF8 --no-locale \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    _as_server_user "$bin/pg_ctl" -D "$EXT_PGDATA" -l "$EXT_PGDATA/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $EXT_PORT -k $EXT_PGDATA -c fsync=off" start >/dev/null

    export DB_USER=course DB_HOST=127.0.0.1 DB_PORT=$EXT_PORT DB_NAME=course
    export DBKIT_TEST_SERVER_LOG="$EXT_PGDATA/server.log"  # tests/test_bad_settings.py reads it
    export DB_PASS='p@ss:w/rd %#?&=!'
    # a role like a learner's own: may create databases and roles, is not a superuser
    _as_server_user "$bin/psql" -q -h "$EXT_PGDATA" -p "$EXT_PORT" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -v pw="$DB_PASS" <<'SQL'
CREATE ROLE course LOGIN CREATEDB CREATEROLE PASSWORD :'pw';
GRANT pg_signal_backend TO course;
CREATE DATABASE course OWNER course;
SQL
    echo "external PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$EXT_PORT"
}

external_postgres_stop() {
    local bin; bin=$(_pgbin)
    if [ -n "$bin" ] && [ -f "$EXT_PGDATA/postmaster.pid" ]; then
        _as_server_user "$bin/pg_ctl" -D "$EXT_PGDATA" -m fast -w stop >/dev/null || true
    fi
}
