#!/usr/bin/env bash
# Installs what the build, the tests, `make demo` and `make bench` need on a
# fresh Debian 12 machine, as root: the PostgreSQL server and client
# (postgresql, postgresql-contrib), openssl, CA certificates, asciinema, openssh-server, sshpass, rsync, pgbouncer
# (optional: only `make bench` uses it), the Go modules of both modules and
# the sops CLI for the sops plugin's tests (bin/tools/sops).
#
# Idempotent: apt is not touched when every package is installed, and
# `apt-get update` runs only when a missing package has no install candidate
# or an install fails on stale package lists.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

required=(postgresql postgresql-contrib openssl ca-certificates asciinema openssh-server openssh-client sshpass rsync)
optional=(pgbouncer)

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# has_candidate PKG: apt knows a version of PKG it could install.
has_candidate() {
	local candidate
	candidate=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
	[[ -n $candidate && $candidate != "(none)" ]]
}

updated=0
apt_update() {
	if ((updated == 0)); then
		log "apt-get update"
		apt-get update -qq
		updated=1
	fi
}

# apt_install PKG...: install, refreshing the package lists first when apt
# does not know a package, and once more if the install fails on stale lists.
apt_install() {
	local pkg
	for pkg in "$@"; do
		has_candidate "$pkg" || apt_update
	done
	log "apt-get install $*"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; then
		((updated == 1)) && return 1
		apt_update
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
	fi
}

missing_required=()
for pkg in "${required[@]}"; do
	installed "$pkg" || missing_required+=("$pkg")
done
missing_optional=()
for pkg in "${optional[@]}"; do
	installed "$pkg" || missing_optional+=("$pkg")
done

if ((${#missing_required[@]} + ${#missing_optional[@]} > 0)); then
	if ! command -v apt-get >/dev/null; then
		die "missing packages (${missing_required[*]} ${missing_optional[*]}) and no apt-get: install them by hand"
	fi
	if ((EUID != 0)); then
		((${#missing_required[@]} == 0)) || die "missing packages: ${missing_required[*]}; run as root or: sudo apt-get install -y ${missing_required[*]}"
		warn "not root: skipping optional packages ${missing_optional[*]}"
	else
		if ((${#missing_required[@]} > 0)); then
			apt_install "${missing_required[@]}" || die "could not install ${missing_required[*]}"
		fi
		for pkg in "${missing_optional[@]}"; do
			apt_install "$pkg" || warn "could not install optional package $pkg; continuing without it"
		done
	fi
fi

# Debian's postgresql package may start its own "main" cluster on 5432; the
# tests and the demo start their own clusters on free ports, so it does no
# harm and is left alone.
pg_bin_dir >/dev/null || die "PostgreSQL server binaries are still missing from /usr/lib/postgresql/*/bin"

ensure_go
log "go mod download (root module and sdk)"
go mod download
if grep -q '^require' sdk/go.mod; then
	(cd sdk && go mod download)
fi
# The sops CLI that the sops secret plugin's tests encrypt with, built once
# into bin/tools (about a minute on two cores) and reused; keep the version in
# step with internal/plugintest.SopsVersion. The tests build it themselves
# when it is missing.
sops_version=v3.13.3
if [[ "$(bin/tools/sops --version --disable-version-check 2>/dev/null | head -n 1)" != "sops ${sops_version#v}" ]]; then
	log "go install github.com/getsops/sops/v3/cmd/sops@$sops_version into bin/tools (once)"
	GOBIN="$PWD/bin/tools" go install "github.com/getsops/sops/v3/cmd/sops@$sops_version"
fi
log "dependencies ready"
