#!/usr/bin/env bash
# make bench: pgbench -S in simple and extended query mode, in one run,
# directly against PostgreSQL, through gatewayd and through pgbouncer
# (session mode; when installed), with client TLS (sslmode=require) on every
# path. Prints TPS and the ratio to direct and saves everything under
# bench/results/. See bench/README.md.
#
# Knobs (environment):
#   BENCH_DURATION=20      seconds per pgbench run
#   BENCH_CLIENTS=8        pgbench -c
#   BENCH_THREADS=2        pgbench -j
#   BENCH_ROUNDS=2         rounds; each runs every path in every mode, the
#                          path order alternating from round to round
#   BENCH_SCALE=10         pgbench -i -s
#   BENCH_MODES="simple extended"
#   BENCH_WARMUP=5         seconds of unrecorded warm-up per path (0: none)
#   BENCH_UPSTREAM_TLS=disable   gatewayd's and pgbouncer's TLS to PostgreSQL
#                          (disable or require; the same on both)
#   BENCH_GOAL=0.74        the gatewayd/direct ratio the run is held to
#   BENCH_ENFORCE=0        1: exit 1 when gatewayd is below the goal
#   BENCH_SKIP_DEPS=0      1: do not run scripts/install-deps.sh
#   BENCH_KEEP=0           1: keep the work directory (clusters, logs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DURATION=${BENCH_DURATION:-20}
CLIENTS=${BENCH_CLIENTS:-8}
THREADS=${BENCH_THREADS:-2}
ROUNDS=${BENCH_ROUNDS:-2}
SCALE=${BENCH_SCALE:-10}
read -r -a MODES <<<"${BENCH_MODES:-simple extended}"
WARMUP=${BENCH_WARMUP:-5}
UPSTREAM_TLS=${BENCH_UPSTREAM_TLS:-disable}
GOAL=${BENCH_GOAL:-0.74}
case $UPSTREAM_TLS in
disable | require) ;;
*) die "BENCH_UPSTREAM_TLS must be disable or require, not $UPSTREAM_TLS" ;;
esac

if [[ ${BENCH_SKIP_DEPS:-0} != 1 ]]; then
	log "installing dependencies (apt only if something is missing)"
	scripts/install-deps.sh
fi
log "building bin/gatewayd"
make --no-print-directory build
PGBIN=$(pg_bin_dir) || die "PostgreSQL server binaries not found; apt-get install -y postgresql"
PGBOUNCER=$(command -v pgbouncer || true)
[[ -n $PGBOUNCER || ! -x /usr/sbin/pgbouncer ]] || PGBOUNCER=/usr/sbin/pgbouncer

WORK=$(mktemp -d /tmp/gatewayd-bench.XXXXXX)
give_to_postgres "$WORK"
chmod 0700 "$WORK"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$ROOT/bench/results/$STAMP
mkdir -p "$RESULTS"

GW_PID=""
PB_PID=""
PG_STARTED=0
cleaned=0
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	local status=$?
	((cleaned == 0)) || return 0
	cleaned=1
	trap '' INT TERM
	local pid
	for pid in $GW_PID $PB_PID; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in $GW_PID $PB_PID; do
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
	((PG_STARTED == 0)) || pg_stop "$PGBIN" "$WORK"
	for f in gatewayd.log pgbouncer.log postgres.log; do
		[[ -f $WORK/$f ]] && [[ $(stat -c %s "$WORK/$f") -lt 20000000 ]] && cp "$WORK/$f" "$RESULTS/" 2>/dev/null
	done
	if [[ ${BENCH_KEEP:-0} == 1 ]]; then
		log "keeping $WORK (BENCH_KEEP=1)"
	else
		rm -rf "$WORK"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- one certificate for every TLS endpoint -----------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj "/CN=localhost" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
	-keyout "$WORK/server.key" -out "$WORK/server.crt" >/dev/null 2>&1 ||
	die "openssl could not make the self-signed certificate"
chmod 0600 "$WORK/server.key"
give_to_postgres "$WORK/server.key" "$WORK/server.crt"

# --- PostgreSQL, ssl=on ---------------------------------------------------------
PG_PORT=$(free_port)
log "starting PostgreSQL ($(basename "$(dirname "$PGBIN")"), ssl=on) on 127.0.0.1:$PG_PORT"
pg_init_cluster "$PGBIN" "$WORK" "$PG_PORT" scram-sha-256
cat >>"$WORK/data/postgresql.conf" <<EOF
ssl = on
ssl_cert_file = '$WORK/server.crt'
ssl_key_file = '$WORK/server.key'
shared_buffers = '256MB'
max_connections = 100
EOF
pg_start "$PGBIN" "$WORK" || die "PostgreSQL did not start"
PG_STARTED=1

DB_PASSWORD=$(random_hex 24)
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PG_PORT" -U postgres -d postgres <<SQL
CREATE ROLE bench LOGIN PASSWORD '$DB_PASSWORD';
CREATE DATABASE bench OWNER bench;
SQL
log "pgbench -i -s $SCALE"
"$PGBIN/pgbench" -i -q -s "$SCALE" -h "$WORK" -p "$PG_PORT" -U bench bench >"$WORK/pgbench-init.log" 2>&1 ||
	{
		cat "$WORK/pgbench-init.log" >&2
		die "pgbench -i failed"
	}

# --- gatewayd -------------------------------------------------------------------
TOKEN=$(random_hex 24)
TOKEN_SHA256=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
GW_PORT=$(free_port)
API_PORT=$(free_port)
cat >"$WORK/gateway.toml" <<EOF
[gateway]
data_dir = "$WORK/gatewayd-data"

[listen.postgres]
address = "127.0.0.1:$GW_PORT"
tls_cert_file = "$WORK/server.crt"
tls_key_file = "$WORK/server.key"

[listen.api]
address = "127.0.0.1:$API_PORT"

[[identity.static]]
name = "bench"
groups = ["bench"]
token_sha256 = "$TOKEN_SHA256"

[[connection]]
name = "bench-db"
protocol = "postgres"
address = "127.0.0.1:$PG_PORT"
database = "bench"
user = "bench"
secret = "env:BENCH_DB_PASSWORD"
allow_groups = ["bench"]
tls = "$UPSTREAM_TLS"
EOF
log "starting gatewayd on 127.0.0.1:$GW_PORT (api 127.0.0.1:$API_PORT)"
BENCH_DB_PASSWORD=$DB_PASSWORD bin/gatewayd serve --config "$WORK/gateway.toml" 2>"$WORK/gatewayd.log" >&2 &
GW_PID=$!
if ! wait_http_ok "127.0.0.1:$API_PORT" /healthz "$GW_PID" 60; then
	tail -n 40 "$WORK/gatewayd.log" >&2 || true
	die "gatewayd did not become healthy"
fi

# --- pgbouncer, session mode, client TLS ---------------------------------------
PATHS=(direct gatewayd)
if [[ -n $PGBOUNCER ]]; then
	PB_PORT=$(free_port)
	printf '"bench" "%s"\n' "$DB_PASSWORD" >"$WORK/pgbouncer-users.txt"
	chmod 0600 "$WORK/pgbouncer-users.txt"
	cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/pgbouncer-users.txt
pool_mode = session
max_client_conn = 100
default_pool_size = 20
client_tls_sslmode = require
client_tls_cert_file = $WORK/server.crt
client_tls_key_file = $WORK/server.key
server_tls_sslmode = $UPSTREAM_TLS
ignore_startup_parameters = extra_float_digits
EOF
	give_to_postgres "$WORK/pgbouncer.ini" "$WORK/pgbouncer-users.txt"
	log "starting pgbouncer $("$PGBOUNCER" --version | head -n1 | awk '{print $2}') on 127.0.0.1:$PB_PORT"
	# pgbouncer, like PostgreSQL, refuses to run as root. Started without a
	# shell function in between, so that $! is the process to signal (runuser
	# forwards SIGTERM to pgbouncer).
	if ((EUID == 0)); then
		runuser -u postgres -- "$PGBOUNCER" "$WORK/pgbouncer.ini" 2>"$WORK/pgbouncer.log" >&2 &
	else
		"$PGBOUNCER" "$WORK/pgbouncer.ini" 2>"$WORK/pgbouncer.log" >&2 &
	fi
	PB_PID=$!
	PATHS+=(pgbouncer)
else
	warn "pgbouncer is not installed; benchmarking direct and gatewayd only"
fi

# dsn PATH: the libpq connection string of PATH; password PATH: its password.
dsn() {
	case $1 in
	direct) echo "host=127.0.0.1 port=$PG_PORT user=bench dbname=bench sslmode=require" ;;
	gatewayd) echo "host=127.0.0.1 port=$GW_PORT user=bench dbname=bench-db sslmode=require" ;;
	pgbouncer) echo "host=127.0.0.1 port=$PB_PORT user=bench dbname=bench sslmode=require" ;;
	esac
}
password() {
	if [[ $1 == gatewayd ]]; then echo "$TOKEN"; else echo "$DB_PASSWORD"; fi
}

# Every path must answer, over TLS, before anything is measured.
for path in "${PATHS[@]}"; do
	ok=0
	for _ in $(seq 1 50); do
		got=$(PGPASSWORD=$(password "$path") "$PGBIN/psql" -X -At -c \
			"SELECT count(*) || ' ' || (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) FROM pgbench_branches" \
			"$(dsn "$path")" 2>"$WORK/check-$path.err") && { ok=1 && break; }
		sleep 0.2
	done
	((ok == 1)) || {
		cat "$WORK/check-$path.err" >&2
		die "$path does not answer psql"
	}
	# Through a relay, pg_stat_ssl shows the relay's upstream connection.
	log "$path answers: branches=${got% *} upstream_ssl=${got#* }"
done

declare -A TPS # "path mode" -> space-separated TPS of each round

# run_pgbench PATH MODE SECONDS: prints the TPS, or "error".
run_pgbench() {
	local out status=0
	out=$(PGPASSWORD=$(password "$1") "$PGBIN/pgbench" -n -S -c "$CLIENTS" -j "$THREADS" -T "$3" -M "$2" "$(dsn "$1")" 2>&1) || status=$?
	printf '### %s %s %ss (exit %s)\n%s\n\n' "$1" "$2" "$3" "$status" "$out" >>"$RESULTS/pgbench.log"
	local tps
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' <<<"$out")
	# pgbench exits 0 yet measures nothing when connecting outlasts -T.
	if ((status != 0)) || [[ -z $tps ]]; then
		echo error
	else
		echo "$tps"
	fi
}

{
	echo "date        $STAMP"
	if commit=$(git rev-parse --short HEAD 2>/dev/null); then
		git diff --quiet HEAD 2>/dev/null || commit+=" (uncommitted changes)"
	else
		commit=unknown
	fi
	echo "commit      $commit"
	echo "cpu         $(nproc) x $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "postgres    $("$PGBIN/postgres" --version)"
	[[ -z $PGBOUNCER ]] || echo "pgbouncer   $("$PGBOUNCER" --version | head -n1)"
	echo "go          $(go version)"
	echo "load        $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, before the runs)"
	echo "pgbench     -n -S -c $CLIENTS -j $THREADS -T $DURATION, scale $SCALE, $ROUNDS rounds, modes ${MODES[*]}"
	echo "tls         client sslmode=require on every path; relays to PostgreSQL: $UPSTREAM_TLS"
} >"$RESULTS/env.txt"
cat "$RESULTS/env.txt"

load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l >= 1.0) }'; then
	warn "load average is $load: other work on this machine will skew the figures"
fi

if ((WARMUP > 0)); then
	for path in "${PATHS[@]}"; do
		log "warm-up: $path ${WARMUP}s"
		run_pgbench "$path" simple "$WARMUP" >/dev/null
	done
fi

echo "round,path,mode,tps" >"$RESULTS/results.csv"
for round in $(seq 1 "$ROUNDS"); do
	order=("${PATHS[@]}")
	if ((round % 2 == 0)); then # alternate the order to cancel drift
		order=()
		for ((i = ${#PATHS[@]} - 1; i >= 0; i--)); do order+=("${PATHS[i]}"); done
	fi
	for mode in "${MODES[@]}"; do
		for path in "${order[@]}"; do
			tps=$(run_pgbench "$path" "$mode" "$DURATION")
			log "round $round/$ROUNDS  $path  $mode  ${tps} tps"
			TPS["$path $mode"]+="$tps "
			echo "$round,$path,$mode,$tps" >>"$RESULTS/results.csv"
		done
	done
done

# mean "A B C": the mean of numbers, or "error" if any run failed.
mean() {
	awk '{ for (i = 1; i <= NF; i++) { if ($i == "error") { print "error"; exit } s += $i } if (NF) printf "%.1f\n", s / NF; else print "error" }' <<<"$1"
}

below=0
{
	echo
	printf '%-10s %-9s %10s %7s   %s\n' path mode TPS ratio "per round"
	for mode in "${MODES[@]}"; do
		direct=$(mean "${TPS["direct $mode"]}")
		for path in "${PATHS[@]}"; do
			m=$(mean "${TPS["$path $mode"]}")
			ratio=$(awk -v m="$m" -v d="$direct" 'BEGIN { if (m == "error" || d == "error" || d == 0) print "-"; else printf "%.3f", m / d }')
			printf '%-10s %-9s %10s %7s   %s\n' "$path" "$mode" "$m" "$ratio" "${TPS["$path $mode"]}"
			if [[ $path == gatewayd ]] && ! awk -v r="$ratio" -v g="$GOAL" 'BEGIN { exit !(r != "-" && r + 0 >= g + 0) }'; then
				below=1
			fi
		done
	done
	echo
	if ((below == 0)); then
		echo "goal: gatewayd >= $GOAL x direct in every mode: met"
	else
		echo "goal: gatewayd >= $GOAL x direct in every mode: NOT met"
	fi
} >"$RESULTS/summary.txt"
cat "$RESULTS/summary.txt"
log "results in ${RESULTS#"$ROOT"/}/"

if ((below == 1)) && [[ ${BENCH_ENFORCE:-0} == 1 ]]; then
	exit 1
fi
