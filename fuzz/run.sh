#!/usr/bin/env bash
# `make fuzz`: builds every target, seeds its corpus from testdata/ and runs
# each for FUZZ_SECONDS (default 60), one at a time; one result line each.
# Usage: fuzz/run.sh [target ...]   (default: every target)
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
# cargo-fuzz needs -Z flags; on a stable toolchain RUSTC_BOOTSTRAP allows them.
export RUSTC_BOOTSTRAP=1
# Release with debug assertions and overflow checks; no ASan: the engine has
# no unsafe code, and ASan would halve the executions per second.
flags=(-O -a -s none)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked || exit 1
python3 fuzz/seed.py || exit 1
cargo fuzz build "${flags[@]}" || exit 1

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

# Which dictionaries (fuzz/dicts/*.dict) each target gets.
dicts_for() {
    case $1 in
        json_walk | json_array | eventstream | policy) echo json ;;
        sse) echo sse ;;
        detectors) echo detect ;;
        injection) echo injection ;;
        request) echo json detect ;;
        response_*) echo json sse detect ;;
    esac
}

mkdir -p fuzz/target/logs fuzz/artifacts
failed=0
for t in "${targets[@]}"; do
    dict=fuzz/target/logs/$t.dict
    : >"$dict"
    for d in $(dicts_for "$t"); do cat "fuzz/dicts/$d.dict" >>"$dict"; done
    log=fuzz/target/logs/$t.log
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a blow-up.
    cargo fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -dict="$dict" \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    if [ $rc -eq 0 ]; then
        printf 'fuzz %-18s ok      %9s execs %7s/s  corpus %5s  %ss\n' "$t" "${execs:-?}" "${rate:-?}" "$corpus" "$seconds"
    else
        failed=1
        artefact=$(grep -o 'fuzz/artifacts/[^ ]*' "$log" | tail -1)
        printf 'fuzz %-18s FAILED  %9s execs  %s (log: %s)\n' "$t" "${execs:-?}" "${artefact:-no artefact}" "$log"
    fi
done
exit $failed
