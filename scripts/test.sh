#!/usr/bin/env bash
# Runs the checks CI runs: gofmt, go vet, staticcheck (when installed) and
# the tests with the race detector. Works from any directory.
#
#   scripts/test.sh                          # go test -race -count=1 ./...
#   scripts/test.sh -run TestLoad            # go test -race -count=1 -run TestLoad ./...
#   scripts/test.sh -v ./shared/config/      # go test -race -count=1 -v ./shared/config/
#
# Extra arguments are passed to go test after -race -count=1 (later flags
# win, e.g. -count=5); ./... is added unless they name packages (arguments
# starting with ./ or ../, or the module path).
#
# Namespace tests need root; run as another user they skip themselves.
# BWX_TEST_NOW=2027-06-01T00:00:00Z scripts/test.sh runs the whole suite
# with the clock moved to that date (see shared/clock).
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

step() { printf '\n==> %s\n' "$*"; }

step "gofmt -l"
unformatted=$(find . -name '*.go' -not -path './.git/*' -not -path './vendor/*' \
	-not -path '*/testdata/*' -print0 | xargs -0 -r gofmt -l)
if [[ -n $unformatted ]]; then
	echo "not gofmt-clean (run gofmt -w on them):" >&2
	while read -r f; do echo "  $f"; done <<<"$unformatted" >&2
	exit 1
fi
echo "ok"

step "go vet ./..."
go vet ./...
echo "ok"

step "staticcheck ./..."
if command -v staticcheck >/dev/null; then
	staticcheck ./...
	echo "ok"
else
	echo "staticcheck not on PATH, skipped (go install honnef.co/go/tools/cmd/staticcheck@v0.8.2)"
fi

module=$(go list -m)
args=(-race -count=1 "$@")
pkgs=(./...)
for a in "$@"; do
	case $a in
	. | ./* | .. | ../* | "$module" | "$module"/*) pkgs=() ;;
	esac
done
step "go test ${args[*]} ${pkgs[*]}"
if ((EUID != 0)); then
	echo "(not root: namespace tests skip themselves)"
fi
go test "${args[@]}" "${pkgs[@]}"

# The packages that own tables again on PostgreSQL (arbiter/store/storetest
# starts a server of each package's own from Debian's postgresql binaries;
# the tests skip, saying so, where they are missing). The rapid properties
# draw 20 cases instead of 100 here: every case is a fresh database, and
# the sqlite pass above draws the full count. Only when the default
# package list runs (not for a named package or -run of the caller's).
if (($# == 0)); then
	# -rapid.checks is a flag only of the binaries that link rapid.
	rapidpkgs=(./arbiter/book/ ./arbiter/settle/ ./arbiter/registry/irr/ ./arbiter/registry/rpki/ ./arbiter/quality/)
	plainpkgs=(./arbiter/store/... ./arbiter/registry/ ./arbiter/delivery/)
	step "BWX_TEST_POSTGRES=1 go test ${args[*]} (${rapidpkgs[*]} with -rapid.checks=20) ${plainpkgs[*]}"
	BWX_TEST_POSTGRES=1 go test "${args[@]}" "${rapidpkgs[@]}" -rapid.checks=20
	BWX_TEST_POSTGRES=1 go test "${args[@]}" "${plainpkgs[@]}"
fi

# The suite again with the clock moved years ahead, to the first instant of
# a month's last day (shared/clock: BWX_TEST_NOW moves clock.Now in test
# binaries). A test whose fixed date leans on the real calendar, or a
# component that reads the real clock behind its injected one, fails here
# today instead of on the day the calendar passes it. -short leaves out the
# network-namespace tests (labnet.NeedsRoot), which the run above covers.
shifted=2031-02-28T00:00:00Z
step "BWX_TEST_NOW=$shifted go test ${args[*]} -short ${pkgs[*]}"
BWX_TEST_NOW=$shifted go test "${args[@]}" -short "${pkgs[@]}"
