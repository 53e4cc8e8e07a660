# shellcheck shell=bash
# Helpers shared by scripts/install-deps.sh, scripts/demo.sh and bench/run.sh.
# Source it; it defines functions only (plus Go on PATH).

# Go 1.26 lives in /usr/local/go on the project's machines.
case ":$PATH:" in
*:/usr/local/go/bin:*) ;;
*) [[ -x /usr/local/go/bin/go ]] && PATH="/usr/local/go/bin:$PATH" ;;
esac
export PATH

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

ensure_go() {
	command -v go >/dev/null || die "go not found: install Go 1.26 into /usr/local/go (https://go.dev/dl/)"
}

# pg_bin_dir prints the newest /usr/lib/postgresql/*/bin holding a server.
pg_bin_dir() {
	local dir best="" best_version=0 version
	for dir in /usr/lib/postgresql/*/bin; do
		[[ -x $dir/initdb && -x $dir/postgres && -x $dir/pg_ctl ]] || continue
		version=${dir#/usr/lib/postgresql/}
		version=${version%%/*}
		version=${version%%.*}
		[[ $version =~ ^[0-9]+$ ]] || continue
		if ((version > best_version)); then
			best=$dir
			best_version=$version
		fi
	done
	[[ -n $best ]] || return 1
	printf '%s\n' "$best"
}

# as_postgres CMD...: runs CMD as the postgres OS user when we are root
# (PostgreSQL and pgbouncer refuse to run as root), as ourselves otherwise.
as_postgres() {
	if ((EUID == 0)); then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# give_to_postgres PATH...: hands files to the postgres OS user when root.
give_to_postgres() {
	if ((EUID == 0)); then
		chown -R postgres:postgres "$@"
	fi
}

# postgres_can_reach DIR: the postgres OS user can enter DIR (every parent
# must be traversable, which /root and 0700 home directories are not).
postgres_can_reach() {
	if ((EUID == 0)); then
		runuser -u postgres -- test -x "$1" -a -w "$1"
	else
		test -x "$1" -a -w "$1"
	fi
}

# random_hex N: N random bytes as 2N hex digits.
random_hex() {
	od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'
}

# port_in_use PORT: something accepts connections on 127.0.0.1:PORT.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port [PREFERRED]: PREFERRED when nothing listens on it, otherwise a
# random unused high port. (Another process may still take it before we bind
# it; callers that start a server check that it came up.)
# shellcheck disable=SC2120 # PREFERRED is optional
free_port() {
	local port=${1:-}
	if [[ -n $port ]] && ! port_in_use "$port"; then
		printf '%s\n' "$port"
		return
	fi
	for _ in $(seq 1 100); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if ! port_in_use "$port"; then
			printf '%s\n' "$port"
			return
		fi
	done
	die "no free port found"
}

# http_ok HOSTPORT PATH: GET http://HOSTPORT/PATH answers 200. Plain bash,
# so a fresh machine needs no curl.
# (A subshell, so a failed connect cannot end the caller.)
http_ok() (
	host=${1%:*} port=${1##*:} status=""
	exec 3<>"/dev/tcp/$host/$port" || exit 1
	printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$2" "$1" >&3
	IFS= read -r -t 5 status <&3 || true
	[[ $status =~ ^HTTP/[0-9.]+\ 200 ]]
)

# wait_http_ok HOSTPORT PATH PID TIMEOUT_SECONDS: waits for http_ok while PID
# lives.
wait_http_ok() {
	local deadline=$((SECONDS + $4))
	while ((SECONDS < deadline)); do
		kill -0 "$3" 2>/dev/null || return 1
		http_ok "$1" "$2" 2>/dev/null && return 0
		sleep 0.2
	done
	return 1
}

# pg_init_cluster BINDIR DIR PORT AUTH: initdb in DIR/data as the postgres
# OS user, listening only on 127.0.0.1:PORT with its socket in DIR. Local
# (socket) connections are trusted; TCP ones use AUTH.
pg_init_cluster() {
	local bindir=$1 dir=$2 port=$3 auth=$4
	as_postgres "$bindir/initdb" -D "$dir/data" -U postgres \
		--auth-local=trust --auth-host="$auth" -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
		{
			cat "$dir/initdb.log" >&2
			die "initdb failed"
		}
	cat >>"$dir/data/postgresql.conf" <<EOF

# written by gatewayd's scripts
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
EOF
}

# pg_start BINDIR DIR: starts the cluster in DIR and waits until it is ready.
pg_start() {
	as_postgres "$1/pg_ctl" -D "$2/data" -l "$2/postgres.log" -w -t 60 start >/dev/null || {
		tail -n 30 "$2/postgres.log" >&2 || true
		return 1
	}
}

# pg_stop BINDIR DIR: stops the cluster in DIR if it runs.
pg_stop() {
	[[ -f $2/data/postmaster.pid ]] || return 0
	as_postgres "$1/pg_ctl" -D "$2/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
		as_postgres "$1/pg_ctl" -D "$2/data" -m immediate -w stop >/dev/null 2>&1 || true
}
