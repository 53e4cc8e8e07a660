#!/usr/bin/env bash
# make bench: pgbench -S in simple and extended query mode, in one run,
# directly against PostgreSQL, through gatewayd, through gatewayd with its
# PostgreSQL handler run as the external plugin bin/gatewayd-postgres
# ("plugin"), through gatewayd with the sqlguard policy and pii masking
# modules ("modules"), and through pgbouncer (session mode; when installed),
# with client TLS (sslmode=require) on every path; then a masking run: large
# SELECTs of synthetic personal data, directly and through gatewayd masking
# them, timed, with gatewayd's peak RSS. Prints TPS and the ratio to direct,
# the plugin/gatewayd ratio, the masking table, and saves everything under
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
#   BENCH_GOAL=0.74        the gatewayd/direct and modules/direct TPS ratio
#                          the run is held to
#   BENCH_PLUGIN=1         0: no plugin path
#   BENCH_PLUGIN_GOAL=0.90 the plugin/gatewayd TPS ratio the run is held to
#   BENCH_MASK_ROWS="250000 1000000"   row counts of the masking run ("": no
#                          masking run)
#   BENCH_MASK_REPEAT=3    timed queries per row count and path (the median
#                          is reported)
#   BENCH_MASK_GOAL=1.5    the highest masked gatewayd/direct time ratio
#   BENCH_MASK_RSS_GOAL=100   the highest gatewayd peak RSS (MiB) while masking
#   BENCH_ENFORCE=0        1: exit 1 when any goal is not met
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
PLUGIN=${BENCH_PLUGIN:-1}
PLUGIN_GOAL=${BENCH_PLUGIN_GOAL:-0.90}
# Unset: the default row counts; set but empty: no masking run.
read -r -a MASK_ROWS <<<"${BENCH_MASK_ROWS-250000 1000000}"
MASK_REPEAT=${BENCH_MASK_REPEAT:-3}
MASK_GOAL=${BENCH_MASK_GOAL:-1.5}
MASK_RSS_GOAL=${BENCH_MASK_RSS_GOAL:-100}
case $UPSTREAM_TLS in
disable | require) ;;
*) die "BENCH_UPSTREAM_TLS must be disable or require, not $UPSTREAM_TLS" ;;
esac
MASK_MIN=0 MASK_MAX=0
for n in "${MASK_ROWS[@]}"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_MASK_ROWS must hold positive row counts, not $n"
	((n <= MASK_MAX)) || MASK_MAX=$n
	((MASK_MIN != 0 && n >= MASK_MIN)) || MASK_MIN=$n
done
[[ $MASK_REPEAT =~ ^[1-9][0-9]*$ ]] || die "BENCH_MASK_REPEAT must be a positive count, not $MASK_REPEAT"

if [[ ${BENCH_SKIP_DEPS:-0} != 1 ]]; then
	log "installing dependencies (apt only if something is missing)"
	scripts/install-deps.sh
fi
log "building bin/gatewayd and bin/gatewayd-postgres"
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
PL_PID=""
PB_PID=""
SAMPLER_PID=""
PG_STARTED=0
cleaned=0
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	local status=$?
	((cleaned == 0)) || return 0
	cleaned=1
	trap '' INT TERM
	local pid
	[[ -z $SAMPLER_PID ]] || kill -TERM "$SAMPLER_PID" 2>/dev/null || true
	for pid in $GW_PID $PL_PID $PB_PID; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in $GW_PID $PL_PID $PB_PID; do
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
	((PG_STARTED == 0)) || pg_stop "$PGBIN" "$WORK"
	for f in gatewayd.log gatewayd-plugin.log pgbouncer.log postgres.log; do
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

# --- synthetic personal data for the masking run ---------------------------------
# Emails and SSNs (masked by column name and by content) and Luhn-valid test
# card numbers (found by content only: "card" is not one of pii's column
# names). The primary key makes ORDER BY id LIMIT N an index scan, so the
# server's share of each query stays small next to what the relay does.
if ((${#MASK_ROWS[@]} > 0)); then
	log "creating table people with $MASK_MAX rows"
	"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PG_PORT" -U bench -d bench >"$WORK/people.log" 2>&1 <<SQL ||
CREATE TABLE people (id int, name text, email text, ssn text, card text);
INSERT INTO people
SELECT i,
       'Person ' || i,
       'user' || i || '@example.com',
       lpad((i % 899 + 100)::text, 3, '0') || '-' || lpad((i % 99 + 1)::text, 2, '0') || '-' || lpad((i % 9999 + 1)::text, 4, '0'),
       (ARRAY['4111 1111 1111 1111', '5500 0000 0000 0004', '3782 822463 10005'])[i % 3 + 1]
FROM generate_series(1, $MASK_MAX) AS i;
ALTER TABLE people ADD PRIMARY KEY (id);
VACUUM (FREEZE, ANALYZE) people;
SQL
		{
			cat "$WORK/people.log" >&2
			die "creating table people failed"
		}
fi

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

# The same database again, for the modules path and the masking run.
[[connection]]
name = "bench-guarded"
protocol = "postgres"
address = "127.0.0.1:$PG_PORT"
database = "bench"
user = "bench"
secret = "env:BENCH_DB_PASSWORD"
allow_groups = ["bench"]
tls = "$UPSTREAM_TLS"

[[connection]]
name = "bench-masked"
protocol = "postgres"
address = "127.0.0.1:$PG_PORT"
database = "bench"
user = "bench"
secret = "env:BENCH_DB_PASSWORD"
allow_groups = ["bench"]
tls = "$UPSTREAM_TLS"

[[policy]]
module = "sqlguard"
connections = ["bench-guarded"]
[policy.config]
deny_kinds = ["DROP", "TRUNCATE"]

[[masking]]
module = "pii"
connections = ["bench-guarded", "bench-masked"]
EOF
log "starting gatewayd on 127.0.0.1:$GW_PORT (api 127.0.0.1:$API_PORT)"
BENCH_DB_PASSWORD=$DB_PASSWORD bin/gatewayd serve --config "$WORK/gateway.toml" 2>"$WORK/gatewayd.log" >&2 &
GW_PID=$!
if ! wait_http_ok "127.0.0.1:$API_PORT" /healthz "$GW_PID" 60; then
	tail -n 40 "$WORK/gatewayd.log" >&2 || true
	die "gatewayd did not become healthy"
fi

# --- gatewayd with the external PostgreSQL handler ----------------------------
# The same configuration on other ports and its own data directory, served by
# bench/gatewayd-plugin: gatewayd's core with the listener handed to
# bin/gatewayd-postgres (go-plugin, AutoMTLS; each client connection passed
# once by file descriptor, Host calls batched over one gRPC stream).
if [[ $PLUGIN == 1 ]]; then
	PL_PORT=$(free_port)
	PL_API_PORT=$(free_port)
	sed -e "s|127.0.0.1:$GW_PORT\"|127.0.0.1:$PL_PORT\"|" -e "s|127.0.0.1:$API_PORT\"|127.0.0.1:$PL_API_PORT\"|" \
		-e "s|$WORK/gatewayd-data|$WORK/gatewayd-plugin-data|" "$WORK/gateway.toml" >"$WORK/gateway-plugin.toml"
	go build -o "$WORK/gatewayd-plugin" ./bench/gatewayd-plugin
	log "starting gatewayd with the plugin bin/gatewayd-postgres on 127.0.0.1:$PL_PORT (api 127.0.0.1:$PL_API_PORT)"
	BENCH_DB_PASSWORD=$DB_PASSWORD "$WORK/gatewayd-plugin" --config "$WORK/gateway-plugin.toml" --plugin bin/gatewayd-postgres \
		2>"$WORK/gatewayd-plugin.log" >&2 &
	PL_PID=$!
	if ! wait_http_ok "127.0.0.1:$PL_API_PORT" /healthz "$PL_PID" 60; then
		tail -n 40 "$WORK/gatewayd-plugin.log" >&2 || true
		die "gatewayd with the plugin did not become healthy"
	fi
fi

# rss_kib PID: PID's VmRSS in KiB now.
rss_kib() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}
# mib KIB: KiB as MiB with one decimal.
mib() {
	awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'
}
GW_HEALTHY_KIB=$(rss_kib "$GW_PID")

# --- pgbouncer, session mode, client TLS ---------------------------------------
PATHS=(direct gatewayd)
[[ $PLUGIN != 1 ]] || PATHS+=(plugin)
PATHS+=(modules)
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
	plugin) echo "host=127.0.0.1 port=$PL_PORT user=bench dbname=bench-db sslmode=require" ;;
	modules) echo "host=127.0.0.1 port=$GW_PORT user=bench dbname=bench-guarded sslmode=require" ;;
	masked) echo "host=127.0.0.1 port=$GW_PORT user=bench dbname=bench-masked sslmode=require" ;;
	pgbouncer) echo "host=127.0.0.1 port=$PB_PORT user=bench dbname=bench sslmode=require" ;;
	esac
}
password() {
	case $1 in
	gatewayd | plugin | modules | masked) echo "$TOKEN" ;;
	*) echo "$DB_PASSWORD" ;;
	esac
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

# The modules must be at work, or the figures would measure nothing: sqlguard
# denies DROP on bench-guarded ...
if PGPASSWORD=$TOKEN "$PGBIN/psql" -X -At -c "DROP TABLE IF EXISTS bench_guard_probe" \
	"$(dsn modules)" >/dev/null 2>"$WORK/check-guard.err"; then
	die "sqlguard did not deny DROP on bench-guarded: the policy module is not applied (see gatewayd.log)"
fi
log "modules: sqlguard denies DROP ($(head -n1 "$WORK/check-guard.err"))"
# ... and pii masks the emails of people on bench-masked.
if ((${#MASK_ROWS[@]} > 0)); then
	got=$(PGPASSWORD=$TOKEN "$PGBIN/psql" -X -At -c "SELECT email FROM people WHERE id = 1" \
		"$(dsn masked)" 2>"$WORK/check-mask.err") || {
		cat "$WORK/check-mask.err" >&2
		die "bench-masked does not answer SELECT email FROM people WHERE id = 1"
	}
	[[ $got != "user1@example.com" ]] ||
		die "masking does not happen: bench-masked returned people.email unmasked ($got); is the pii module applied? (see gatewayd.log)"
	log "masked: people.email of id 1 reads $got"
fi

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
	echo "modules     path modules: bench-guarded with sqlguard (deny_kinds DROP, TRUNCATE) and pii"
	[[ $PLUGIN != 1 ]] || echo "plugin      path plugin: bench-db through the external PostgreSQL handler bin/gatewayd-postgres (bench/gatewayd-plugin)"
	if ((${#MASK_ROWS[@]} > 0)); then
		echo "masking     psql -At SELECT * FROM people ORDER BY id LIMIT N, N in ${MASK_ROWS[*]}, median of $MASK_REPEAT, bench-masked with pii"
	else
		echo "masking     skipped (BENCH_MASK_ROWS empty)"
	fi
} >"$RESULTS/env.txt"
cat "$RESULTS/env.txt"

load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l >= 1.0) }'; then
	warn "load average is $load: other work on this machine will skew the figures"
fi

failed=0 # goals not met

# --- masking run ------------------------------------------------------------------
# For each N: psql fetches the first N rows of people into /dev/null, directly
# and through bench-masked (pii), alternating which goes first; wall-clock
# seconds include psql's start and the connection (TLS, authentication), the
# same on both sides. gatewayd's VmRSS is sampled every 50 ms during its runs.
# It runs before pgbench, whose sessions through the modules leave gatewayd
# with a larger heap that would hide what masking itself costs.

# sample_rss PID FILE: until SIGTERM, reads PID's VmRSS every 50 ms, then
# writes the peak (KiB) to FILE.
# shellcheck disable=SC2317 # the trap is invoked by SIGTERM
sample_rss() {
	local peak=0 key value _
	trap 'echo "$peak" >"$2"; exit 0' TERM
	while :; do
		while read -r key value _; do
			if [[ $key == VmRSS: ]]; then
				((value <= peak)) || peak=$value
				break
			fi
		done 2>/dev/null <"/proc/$1/status" || true
		sleep 0.05
	done
}

# run_select PATH N: prints the wall-clock seconds of psql fetching N rows of
# people through PATH, or "error".
run_select() {
	local pass conn t0 t1 status=0
	pass=$(password "$1")
	conn=$(dsn "$1")
	t0=$(date +%s.%N)
	PGPASSWORD=$pass "$PGBIN/psql" -X -At -v ON_ERROR_STOP=1 \
		-c "SELECT * FROM people ORDER BY id LIMIT $2" "$conn" >/dev/null 2>"$WORK/select.err" || status=$?
	t1=$(date +%s.%N)
	if ((status != 0)); then
		printf '### %s %s rows (exit %s)\n%s\n\n' "$1" "$2" "$status" "$(cat "$WORK/select.err")" >>"$RESULTS/masking.log"
		echo error
	else
		awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
	fi
}

# median "A B C": the median of numbers, or "error" if any run failed.
median() {
	[[ " $1 " != *" error "* ]] || {
		echo error
		return
	}
	tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g |
		awk '{ v[++n] = $1 } END { if (n == 0) print "error"; else if (n % 2) printf "%.3f\n", v[(n + 1) / 2]; else printf "%.3f\n", (v[n / 2] + v[n / 2 + 1]) / 2 }'
}

if ((${#MASK_ROWS[@]} > 0)); then
	idle_kib=$(rss_kib "$GW_PID")
	if ((WARMUP > 0)); then
		log "warm-up: masking, $MASK_MAX rows, direct and masked"
		run_select direct "$MASK_MAX" >/dev/null
		run_select masked "$MASK_MAX" >/dev/null
	fi
	declare -A MSEC=() PEAK=() # "path N" -> seconds of each run; N -> peak KiB
	echo "rows,repeat,path,seconds,peak_rss_kib" >"$RESULTS/masking-runs.csv"
	turn=0
	for n in "${MASK_ROWS[@]}"; do
		PEAK[$n]=0
		for r in $(seq 1 "$MASK_REPEAT"); do
			order=(direct masked)
			((turn++ % 2 == 0)) || order=(masked direct)
			for path in "${order[@]}"; do
				peak=""
				if [[ $path == masked ]]; then
					rm -f "$WORK/rss-peak"
					sample_rss "$GW_PID" "$WORK/rss-peak" &
					SAMPLER_PID=$!
				fi
				secs=$(run_select "$path" "$n")
				if [[ $path == masked ]]; then
					kill -TERM "$SAMPLER_PID"
					wait "$SAMPLER_PID" || true
					SAMPLER_PID=""
					peak=$(cat "$WORK/rss-peak" 2>/dev/null || echo 0)
					((peak <= PEAK[$n])) || PEAK[$n]=$peak
				fi
				label=$path
				[[ $path == direct ]] || label=gatewayd
				log "masking $n rows $r/$MASK_REPEAT  $label  ${secs}s${peak:+  peak RSS $((peak / 1024)) MiB}"
				MSEC["$label $n"]+="$secs "
				echo "$n,$r,$label,$secs,$peak" >>"$RESULTS/masking-runs.csv"
			done
		done
	done

	# Ratio goal: at every row count. RSS goal: at most MASK_RSS_GOAL MiB at
	# every row count, and flat: the peak at the largest row count is within
	# 20% of the peak at the smallest.
	ratio_ok=met rss_ok=met
	{
		echo
		echo "masking: SELECT * FROM people ORDER BY id LIMIT rows, psql -At > /dev/null, wall-clock"
		echo "seconds, median of $MASK_REPEAT; gatewayd = connection bench-masked (pii); peak RSS over its runs"
		printf '%-10s %10s %11s %7s %13s   %s\n' rows "direct s" "gatewayd s" ratio "peak RSS MiB" "per run: direct | gatewayd"
		echo "rows,direct_s,gatewayd_s,ratio,peak_rss_mib" >"$RESULTS/masking.csv"
		for n in "${MASK_ROWS[@]}"; do
			d=$(median "${MSEC["direct $n"]}")
			g=$(median "${MSEC["gatewayd $n"]}")
			ratio=$(awk -v g="$g" -v d="$d" 'BEGIN { if (g == "error" || d == "error" || d == 0) print "-"; else printf "%.3f", g / d }')
			peak_mib=$(mib "${PEAK[$n]}")
			printf '%-10s %10s %11s %7s %13s   %s| %s\n' "$n" "$d" "$g" "$ratio" "$peak_mib" "${MSEC["direct $n"]}" "${MSEC["gatewayd $n"]}"
			echo "$n,$d,$g,$ratio,$peak_mib" >>"$RESULTS/masking.csv"
			awk -v r="$ratio" -v goal="$MASK_GOAL" 'BEGIN { exit !(r != "-" && r + 0 <= goal + 0) }' || ratio_ok="NOT met"
			awk -v m="$peak_mib" -v goal="$MASK_RSS_GOAL" 'BEGIN { exit !(m + 0 > 0 && m + 0 <= goal + 0) }' || rss_ok="NOT met"
		done
		first=$(mib "${PEAK[$MASK_MIN]}")
		last=$(mib "${PEAK[$MASK_MAX]}")
		awk -v a="$first" -v b="$last" 'BEGIN { exit !(b <= 1.2 * a) }' || rss_ok="NOT met"
		growth=$(awk -v a="$first" -v b="$last" 'BEGIN { p = a > 0 ? 100 * (b - a) / a : 0; printf "%+.1f MiB, %+.0f%%", b - a, p }')
		echo
		echo "gatewayd RSS: $(mib "$GW_HEALTHY_KIB") MiB once healthy, $(mib "$idle_kib") MiB before the masking run;" \
			"peak from $MASK_MIN to $MASK_MAX rows: $growth"
		echo "goal: masked gatewayd <= $MASK_GOAL x direct time at every row count: $ratio_ok"
		echo "goal: gatewayd peak RSS <= $MASK_RSS_GOAL MiB at every row count and flat (within 20%): $rss_ok"
	} >"$WORK/masking.txt"
	[[ $ratio_ok == met ]] || failed=$((failed + 1))
	[[ $rss_ok == met ]] || failed=$((failed + 1))
fi

# --- pgbench ----------------------------------------------------------------------
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

declare -A BELOW=([gatewayd]=0 [modules]=0)
PLUGIN_BELOW=0
{
	echo
	printf '%-10s %-9s %10s %7s   %s\n' path mode TPS ratio "per round"
	for mode in "${MODES[@]}"; do
		direct=$(mean "${TPS["direct $mode"]}")
		for path in "${PATHS[@]}"; do
			m=$(mean "${TPS["$path $mode"]}")
			ratio=$(awk -v m="$m" -v d="$direct" 'BEGIN { if (m == "error" || d == "error" || d == 0) print "-"; else printf "%.3f", m / d }')
			printf '%-10s %-9s %10s %7s   %s\n' "$path" "$mode" "$m" "$ratio" "${TPS["$path $mode"]}"
			if [[ -n ${BELOW[$path]-} ]] && ! awk -v r="$ratio" -v g="$GOAL" 'BEGIN { exit !(r != "-" && r + 0 >= g + 0) }'; then
				BELOW[$path]=1
			fi
		done
	done
	echo
	for path in gatewayd modules; do
		if ((BELOW[$path] == 0)); then
			printf 'goal: %-8s >= %s x direct in every mode: met\n' "$path" "$GOAL"
		else
			printf 'goal: %-8s >= %s x direct in every mode: NOT met\n' "$path" "$GOAL"
		fi
	done
	if [[ $PLUGIN == 1 ]]; then
		echo
		printf '%-10s %-9s %10s %10s %7s\n' plugin mode "plugin TPS" "gatewayd" ratio
		for mode in "${MODES[@]}"; do
			g=$(mean "${TPS["gatewayd $mode"]}")
			m=$(mean "${TPS["plugin $mode"]}")
			ratio=$(awk -v m="$m" -v g="$g" 'BEGIN { if (m == "error" || g == "error" || g == 0) print "-"; else printf "%.3f", m / g }')
			printf '%-10s %-9s %10s %10s %7s\n' "" "$mode" "$m" "$g" "$ratio"
			awk -v r="$ratio" -v goal="$PLUGIN_GOAL" 'BEGIN { exit !(r != "-" && r + 0 >= goal + 0) }' || PLUGIN_BELOW=1
		done
		if ((PLUGIN_BELOW == 0)); then
			printf 'goal: plugin   >= %s x gatewayd in every mode: met\n' "$PLUGIN_GOAL"
		else
			printf 'goal: plugin   >= %s x gatewayd in every mode: NOT met\n' "$PLUGIN_GOAL"
		fi
	fi
	echo "gatewayd RSS: $(mib "$GW_HEALTHY_KIB") MiB once healthy, $(mib "$(rss_kib "$GW_PID")") MiB after the pgbench runs"
} >"$RESULTS/summary.txt"
cat "$RESULTS/summary.txt"
failed=$((failed + BELOW[gatewayd] + BELOW[modules] + PLUGIN_BELOW))

if ((${#MASK_ROWS[@]} > 0)); then
	cat "$WORK/masking.txt" >>"$RESULTS/summary.txt"
	cat "$WORK/masking.txt"
fi
log "results in ${RESULTS#"$ROOT"/}/"

if ((failed > 0)) && [[ ${BENCH_ENFORCE:-0} == 1 ]]; then
	exit 1
fi
