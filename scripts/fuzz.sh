#!/usr/bin/env bash
# make fuzz: runs every Fuzz target of both modules (the root module and
# ./sdk) for FUZZTIME each (first argument, default 30s). Targets are found
# with `go test -list`; new crashers land in the package's testdata/fuzz/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
ensure_go

FUZZTIME=${1:-30s}
total=0
failed=()

for mod in . sdk; do
	# `go test -list` prints the matching names of a package, then
	# "ok <package> <time>"; remember names until their package line.
	status=0
	listing=$(cd "$mod" && go test -list '^Fuzz' ./... 2>&1) || status=$?
	if ((status != 0)); then
		if [[ $listing == *"no packages to test"* ]]; then
			continue
		fi
		printf '%s\n' "$listing" >&2
		failed+=("$mod: go test -list failed")
	fi
	names=()
	while read -r first second _; do
		case $first in
		Fuzz*) names+=("$first") ;;
		ok)
			for name in "${names[@]}"; do
				total=$((total + 1))
				log "$mod: $second $name for $FUZZTIME"
				if ! (cd "$mod" && go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$second"); then
					failed+=("$second $name")
				fi
			done
			names=()
			;;
		esac
	done <<<"$listing"
done

if ((${#failed[@]} > 0)); then
	printf 'fuzz: failing targets:\n' >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
log "fuzz: $total targets ran for $FUZZTIME each without a failure"
