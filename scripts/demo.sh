#!/usr/bin/env bash
# make demo: on a fresh Debian 12 machine (as root), installs what is
# missing, builds gatewayd, starts a throwaway PostgreSQL cluster holding a
# small table of fake customers, starts gatewayd in front of it with a demo
# identity "alice" and a random token, prints the psql command to run, and
# waits. Ctrl-C stops gatewayd and PostgreSQL and removes the state in .demo/
# (DEMO_KEEP=1 keeps it for a look afterwards).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DEMO=$ROOT/.demo
PGBIN=""
PG_DIR=""
GW_PID=""

stop_gatewayd() {
	local pid=$1
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 75); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.2
	done
	warn "gatewayd did not stop within 15s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
}

cleaned=0
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	local status=$?
	((cleaned == 0)) || return 0
	cleaned=1
	trap '' INT TERM
	if [[ -n $GW_PID ]]; then
		log "stopping gatewayd"
		stop_gatewayd "$GW_PID"
	fi
	if [[ -n $PG_DIR && -n $PGBIN ]]; then
		log "stopping PostgreSQL"
		pg_stop "$PGBIN" "$PG_DIR"
	fi
	if [[ ${DEMO_KEEP:-0} == 1 ]]; then
		log "keeping $DEMO (DEMO_KEEP=1)"
	else
		[[ -n $PG_DIR && $PG_DIR != "$DEMO/pg" ]] && rm -rf "$PG_DIR"
		rm -rf "$DEMO"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop_leftovers stops what an earlier demo killed with SIGKILL left running.
stop_leftovers() {
	[[ -d $DEMO ]] || return 0
	log "removing the state of an earlier demo"
	if [[ -f $DEMO/gatewayd.pid ]]; then
		local pid
		pid=$(<"$DEMO/gatewayd.pid")
		if [[ $pid =~ ^[0-9]+$ ]] && [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$ROOT/bin/gatewayd"* ]]; then
			stop_gatewayd "$pid"
		fi
	fi
	local dir=$DEMO/pg
	[[ -f $DEMO/pg-dir ]] && dir=$(<"$DEMO/pg-dir")
	[[ -d $dir ]] && pg_stop "$PGBIN" "$dir"
	[[ $dir != "$DEMO/pg" && $dir == /tmp/gatewayd-demo-pg.* ]] && rm -rf "$dir"
	rm -rf "$DEMO"
}

log "installing dependencies (apt only if something is missing)"
scripts/install-deps.sh
log "building bin/gatewayd and bin/gatewayctl"
make --no-print-directory build
PGBIN=$(pg_bin_dir) || die "PostgreSQL server binaries not found; apt-get install -y postgresql"

stop_leftovers
# .demo holds the token and the database password (files 0600); others may
# traverse it (0711) so that the postgres OS user reaches its cluster.
mkdir -p "$DEMO"
chmod 0711 "$DEMO"

# --- PostgreSQL -------------------------------------------------------------
PG_DIR=$DEMO/pg
mkdir -p "$PG_DIR"
give_to_postgres "$PG_DIR"
chmod 0700 "$PG_DIR"
if ! postgres_can_reach "$PG_DIR"; then
	# A checkout under /root or another 0700 directory: the postgres OS user
	# cannot reach .demo, so the cluster lives under /tmp instead.
	rm -rf "$PG_DIR"
	PG_DIR=$(mktemp -d /tmp/gatewayd-demo-pg.XXXXXX)
	give_to_postgres "$PG_DIR"
	chmod 0700 "$PG_DIR"
fi
printf '%s\n' "$PG_DIR" >"$DEMO/pg-dir"

PG_PORT=$(free_port)
log "starting PostgreSQL ($(basename "$(dirname "$PGBIN")")) on 127.0.0.1:$PG_PORT in $PG_DIR"
pg_init_cluster "$PGBIN" "$PG_DIR" "$PG_PORT" scram-sha-256
pg_start "$PGBIN" "$PG_DIR" || die "PostgreSQL did not start"

psql_local() { # psql_local USER DB: psql over the trusted unix socket, SQL on stdin
	"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U "$1" -d "$2"
}

APP_DB_PASSWORD_FILE=$DEMO/app-db.pass
(
	umask 077
	random_hex 24 >"$APP_DB_PASSWORD_FILE"
)
APP_DB_PASSWORD=$(<"$APP_DB_PASSWORD_FILE")

log "creating role app, database app and table customers (fake data)"
# SQL goes through stdin, so the password never shows in the process list.
psql_local postgres postgres <<SQL
CREATE ROLE app LOGIN PASSWORD '$APP_DB_PASSWORD';
CREATE DATABASE app OWNER app;
SQL
psql_local app app <<'SQL'
CREATE TABLE customers (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    email       text NOT NULL,
    phone       text,
    card_number text,
    created_at  timestamptz NOT NULL
);
-- Fictional people, example.com addresses, 555-01xx numbers and the card
-- numbers payment processors publish for testing.
INSERT INTO customers (name, email, phone, card_number, created_at)
SELECT initcap(n) || ' Example',
       n || '@example.com',
       '+1-555-01' || lpad(i::text, 2, '0'),
       (ARRAY['4111 1111 1111 1111', '5555 5555 5555 4444', '3782 822463 10005',
              '6011 1111 1111 1117', '4012 8888 8888 1881'])[1 + i % 5],
       timestamptz '2026-01-05 09:00:00+00' + (i * interval '1 day 3 hours 17 minutes')
FROM unnest(ARRAY['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace',
                  'heidi', 'ivan', 'judy', 'mallory', 'niaj', 'olivia', 'peggy',
                  'rupert', 'sybil', 'trent', 'victor', 'walter', 'zoe'])
     WITH ORDINALITY AS t(n, i);
SQL

# --- gatewayd ---------------------------------------------------------------
TOKEN=$(random_hex 24)
TOKEN_SHA256=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
DANA_TOKEN=$(random_hex 24)
DANA_SHA256=$(printf '%s' "$DANA_TOKEN" | sha256sum | cut -d' ' -f1)
(
	umask 077
	printf '%s\n' "$TOKEN" >"$DEMO/alice.token"
	printf '%s\n' "$DANA_TOKEN" >"$DEMO/dana.token"
)

GW_PORT=$(free_port 15432)
API_PORT=$(free_port 8080)
[[ $GW_PORT == 15432 ]] || warn "127.0.0.1:15432 is taken; gatewayd listens on $GW_PORT"
[[ $API_PORT == 8080 ]] || warn "127.0.0.1:8080 is taken; the API listens on $API_PORT"

# .demo/gateway.toml is the repository's gateway.toml with the real ports and
# alice's token hash; data_dir "./data" lands in .demo/data.
sed -e "s/\"127\.0\.0\.1:15432\"/\"127.0.0.1:$GW_PORT\"/" \
	-e "s/\"127\.0\.0\.1:8080\"/\"127.0.0.1:$API_PORT\"/" \
	-e "s/\"127\.0\.0\.1:5432\"/\"127.0.0.1:$PG_PORT\"/" \
	-e "s/^token_sha256 = \"0\{64\}\"/token_sha256 = \"$TOKEN_SHA256\"/" \
	-e "s/^token_sha256 = \"f\{64\}\"/token_sha256 = \"$DANA_SHA256\"/" \
	gateway.toml >"$DEMO/gateway.toml"
for want in "127.0.0.1:$GW_PORT" "127.0.0.1:$API_PORT" "127.0.0.1:$PG_PORT" "$TOKEN_SHA256" "$DANA_SHA256"; do
	grep -qF "\"$want\"" "$DEMO/gateway.toml" ||
		die "gateway.toml no longer has the shape scripts/demo.sh substitutes (missing $want in .demo/gateway.toml)"
done

log "starting gatewayd (log: .demo/gatewayd.log)"
export APP_DB_PASSWORD
bin/gatewayd serve --config "$DEMO/gateway.toml" >>"$DEMO/gatewayd.log" 2>&1 &
GW_PID=$!
unset APP_DB_PASSWORD
printf '%s\n' "$GW_PID" >"$DEMO/gatewayd.pid"

if ! wait_http_ok "127.0.0.1:$API_PORT" /healthz "$GW_PID" 60; then
	tail -n 40 "$DEMO/gatewayd.log" >&2 || true
	die "gatewayd did not become healthy on http://127.0.0.1:$API_PORT/healthz"
fi

cat <<EOF

gatewayd is running in front of PostgreSQL; database "app" holds 20 fake customers.
alice signs in with her gateway token; the database password stays with gatewayd.

  Connect through the gateway:

    PGPASSWORD=$TOKEN psql "host=127.0.0.1 port=$GW_PORT user=alice dbname=app-db sslmode=require"

  then, for example:
    SELECT name, email, phone, card_number FROM customers LIMIT 5;   -- masked by the pii module
    DROP TABLE customers;                                            -- denied by sqlguard
    DELETE FROM customers WHERE id = 1;                              -- held until a dba approves

  dana (group dba) approves it from another terminal, and the DELETE's result
  arrives in alice's psql session:

    GATEWAYD_ADDR=http://127.0.0.1:$API_PORT GATEWAYD_TOKEN=$DANA_TOKEN bin/gatewayctl review list
    GATEWAYD_ADDR=http://127.0.0.1:$API_PORT GATEWAYD_TOKEN=$DANA_TOKEN bin/gatewayctl review approve ID

  Sessions and audit, through the API:

    GATEWAYD_ADDR=http://127.0.0.1:$API_PORT GATEWAYD_TOKEN=$TOKEN bin/gatewayctl sessions list
    GATEWAYD_ADDR=http://127.0.0.1:$API_PORT GATEWAYD_TOKEN=$TOKEN bin/gatewayctl audit verify

  gatewayd log: .demo/gatewayd.log   config: .demo/gateway.toml
  Ctrl-C stops gatewayd and PostgreSQL and removes .demo/.

EOF

# Wait for Ctrl-C (the INT trap exits, and the EXIT trap cleans up); wait
# returns early when a trapped signal arrives, hence the loop.
while kill -0 "$GW_PID" 2>/dev/null; do
	if wait "$GW_PID"; then status=0; else status=$?; fi
done
tail -n 40 "$DEMO/gatewayd.log" >&2 || true
die "gatewayd exited on its own (status ${status:-?})"
