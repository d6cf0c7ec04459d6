#!/usr/bin/env bash
# Checks that tests/fuzz/run.sh fails when libFuzzer finds a crash: a stand-in `cargo` (first on
# PATH) builds nothing and, for `cargo fuzz run`, writes a crash artifact and exits 77, as
# libFuzzer does. run.sh must exit non-zero, say CRASH, print the input as hex, and keep it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
stub=$(mktemp -d)
trap 'rm -rf "$stub" "$here/artifacts/pipeline_toml/crash-selftest"' EXIT
cat > "$stub/cargo" <<'STUB'
#!/usr/bin/env bash
[ "$1 $2" = "fuzz run" ] || exit 0
for a in "$@"; do
  case "$a" in -artifact_prefix=*) prefix=${a#-artifact_prefix=} ;; esac
done
case "$*" in
  *" pipeline_toml "*) printf 'boom' > "${prefix}crash-selftest"; echo "==1== ERROR: libFuzzer: deadly signal"; exit 77 ;;
esac
echo "Done 1 runs in 0 second(s)"
STUB
chmod +x "$stub/cargo"
: > "$stub/cargo-fuzz"; chmod +x "$stub/cargo-fuzz"
set +e
out=$(PATH="$stub:$PATH" "$here/run.sh" 1 2>&1)
status=$?
set -e
fail() { echo "fuzz selftest: $1"; echo "$out"; exit 1; }
[ "$status" != 0 ] || fail "run.sh exited 0 on a crash"
grep -q "fuzz pipeline_toml: CRASH (exit status 77)" <<<"$out" || fail "no CRASH line"
grep -q "626f6f6d" <<<"$out" || fail "the input is not printed as hex"
grep -q "fuzz records: 1s, no crash" <<<"$out" || fail "the other targets did not run"
[ -f "$here/artifacts/pipeline_toml/crash-selftest" ] || fail "the input was not kept"
echo "fuzz selftest: run.sh reports a crash (exit $status) and keeps its input"
