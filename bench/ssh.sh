#!/usr/bin/env bash
# bench/ssh.sh (run by make bench; alone: bench/ssh.sh RESULTS_DIR): copies
# BENCH_SSH_BYTES (default 1 GiB) over SSH into `cat > /dev/null` on a
# throwaway OpenSSH sshd, directly and through gatewayd, in one run, and
# prints the throughput of each and gatewayd's ratio to direct (goal
# BENCH_SSH_GOAL, 0.85). Best of BENCH_SSH_REPEAT (3) runs each, alternating.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

RESULTS=${1:-$ROOT/bench/results/ssh-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS"
BYTES=${BENCH_SSH_BYTES:-1073741824}
REPEAT=${BENCH_SSH_REPEAT:-3}
GOAL=${BENCH_SSH_GOAL:-0.85}
USER_NAME=gwbench
[[ -x /usr/sbin/sshd ]] || die "sshd not found: apt-get install -y openssh-server (make test installs it)"
[[ -x bin/gatewayd ]] || make --no-print-directory build

# sshd reads authorized_keys as the user: a directory it can reach.
WORK=$(mktemp -d /tmp/gatewayd-bench-ssh.XXXXXX)
chmod 0755 "$WORK"
SSHD_PID="" GW_PID=""
cleanup() {
	for pid in $GW_PID $SSHD_PID; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

id "$USER_NAME" >/dev/null 2>&1 || useradd -m -s /bin/sh "$USER_NAME"
usermod -p '*' "$USER_NAME" # unlocked for key login (sshd without PAM)
ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/upstream_key" # gatewayd's, and direct's
ssh-keygen -q -t ed25519 -N '' -f "$WORK/client_key"   # the engineer's, through gatewayd
cp "$WORK/upstream_key.pub" "$WORK/authorized_keys"
chmod 0644 "$WORK/authorized_keys"
SSHD_PORT=$(free_port)
cat >"$WORK/sshd_config" <<CONF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $WORK/host_key
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
AllowUsers $USER_NAME
LogLevel ERROR
CONF
mkdir -p /run/sshd
/usr/sbin/sshd -D -e -f "$WORK/sshd_config" 2>"$WORK/sshd.log" &
SSHD_PID=$!

GW_PORT=$(free_port)
API_PORT=$(free_port)
TOKEN=$(random_hex 24)
cat >"$WORK/gateway.toml" <<CONF
[gateway]
data_dir = "$WORK/data"

[listen.ssh]
address = "127.0.0.1:$GW_PORT"

[listen.api]
address = "127.0.0.1:$API_PORT"

[[identity.static]]
name = "bench"
groups = ["bench"]
token_sha256 = "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)"
ssh_keys = ["$(cat "$WORK/client_key.pub")"]

[[connection]]
name = "target"
protocol = "ssh"
address = "127.0.0.1:$SSHD_PORT"
user = "$USER_NAME"
secret = "file:$WORK/upstream_key"
host_key = "$(cut -d' ' -f1,2 "$WORK/host_key.pub")"
allow_groups = ["bench"]
CONF
bin/gatewayd serve --config "$WORK/gateway.toml" 2>"$WORK/gatewayd.log" &
GW_PID=$!
wait_http_ok "127.0.0.1:$API_PORT" /healthz "$GW_PID" 60 || {
	tail -n 20 "$WORK/gatewayd.log" >&2
	die "gatewayd did not become healthy"
}

opts=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes)
# copy PATH: seconds to push BYTES through PATH.
copy() {
	local start end
	start=$(date +%s.%N)
	if [[ $1 == direct ]]; then
		head -c "$BYTES" /dev/zero | ssh "${opts[@]}" -i "$WORK/upstream_key" -p "$SSHD_PORT" "$USER_NAME@127.0.0.1" 'cat > /dev/null'
	else
		head -c "$BYTES" /dev/zero | ssh "${opts[@]}" -i "$WORK/client_key" -p "$GW_PORT" target@127.0.0.1 'cat > /dev/null'
	fi
	end=$(date +%s.%N)
	awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", e - s }'
}

# Both paths must work before anything is measured.
ssh "${opts[@]}" -i "$WORK/upstream_key" -p "$SSHD_PORT" "$USER_NAME@127.0.0.1" true ||
	die "direct ssh to the bench sshd failed: $(cat "$WORK/sshd.log")"
ssh "${opts[@]}" -i "$WORK/client_key" -p "$GW_PORT" target@127.0.0.1 true ||
	die "ssh through gatewayd failed: $(tail -n 20 "$WORK/gatewayd.log")"

best_direct="" best_gw=""
echo "run,path,seconds" >"$RESULTS/ssh.csv"
for r in $(seq 1 "$REPEAT"); do
	order=(direct gatewayd)
	((r % 2 == 0)) && order=(gatewayd direct)
	for p in "${order[@]}"; do
		s=$(copy "$p")
		log "ssh copy $r/$REPEAT  $p  ${s}s"
		echo "$r,$p,$s" >>"$RESULTS/ssh.csv"
		if [[ $p == direct ]]; then
			best_direct=$(awk -v a="${best_direct:-1e9}" -v b="$s" 'BEGIN { print (b < a) ? b : a }')
		else
			best_gw=$(awk -v a="${best_gw:-1e9}" -v b="$s" 'BEGIN { print (b < a) ? b : a }')
		fi
	done
done
{
	echo
	echo "ssh: $BYTES bytes into 'cat > /dev/null', best of $REPEAT"
	awk -v b="$BYTES" -v d="$best_direct" -v g="$best_gw" -v goal="$GOAL" 'BEGIN {
		printf "direct     %8.3f s  %8.1f MiB/s\n", d, b / d / 1048576
		printf "gatewayd   %8.3f s  %8.1f MiB/s  ratio %.3f\n", g, b / g / 1048576, d / g
		printf "goal: gatewayd >= %s x direct throughput: %s\n", goal, (d / g >= goal) ? "met" : "NOT met"
	}'
} | tee "$RESULTS/ssh.txt"
