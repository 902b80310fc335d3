#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer on the stable toolchain.
#
#   scripts/fuzz.sh build                  build every target
#   scripts/fuzz.sh seed                   (re)write the seed corpora from the bundled sample
#   scripts/fuzz.sh run TARGET [SECONDS]   fuzz one target (default 600 s); extra arguments
#                                          after SECONDS go to libFuzzer
#   scripts/fuzz.sh list                   the targets
#   scripts/fuzz.sh total                  CPU hours fuzzed so far, per target (runs.log)
#
# Targets: fuzz_decode (stored object bytes -> Arrow batches -> rebuilt records),
# fuzz_envelope (SQS message bodies), fuzz_policy (policy and network functions),
# fuzz_time (eventTime parsing and formatting).
#
# Corpora grow in fuzz/corpus/TARGET, crashes land in fuzz/artifacts/TARGET, and every run
# appends its target, seconds and libFuzzer's last status line to fuzz/runs.log. A crash is
# fixed in the code and its input kept in tests/fuzz-regressions/TARGET/, which the test suite
# replays through the same check (tests/integration/fuzz_regressions.rs).
# Builds go to $FUZZ_TARGET_DIR (default ~/.cache/trailhound-fuzz-target).
set -euo pipefail
script="$(realpath "$0")"
cd "$(dirname "$0")/../fuzz"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/trailhound-fuzz-target}"
export RUSTC_WRAPPER="$PWD/rustc-wrapper.sh"
targets=(fuzz_decode fuzz_envelope fuzz_policy fuzz_time)

case "${1:-}" in
build)
    cargo build --release --bins
    ;;
seed)
    python3 ../scripts/fuzz_seeds.py ../sample corpus "${@:2}"
    ;;
run)
    target="${2:?which target? (scripts/fuzz.sh list)}"
    seconds="${3:-600}"
    [[ " ${targets[*]} " == *" $target "* ]] || { echo "unknown target: $target" >&2; exit 2; }
    cargo build --release --bin "$target"
    [ -d "corpus/$target" ] || python3 ../scripts/fuzz_seeds.py ../sample corpus
    mkdir -p "artifacts/$target"
    log="$(mktemp)"
    cpu="$(mktemp)"
    timer=()
    [ -x /usr/bin/time ] && timer=(/usr/bin/time -f "%U %S" -o "$cpu")
    start=$(date +%s)
    status=0
    "${timer[@]}" "$CARGO_TARGET_DIR/release/$target" "corpus/$target" \
        -artifact_prefix="artifacts/$target/" -max_total_time="$seconds" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${@:4}" 2>&1 | tee "$log" |
        grep --line-buffered -E 'DONE|pulse|NEW_FUNC|ERROR|panicked|SUMMARY|Test unit' || status=$?
    end=$(date +%s)
    last="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
    crashes="$(grep -c 'Test unit written' "$log" || true)"
    cpu_seconds="$(tail -1 "$cpu" | awk '{ printf "%d", $1 + $2 }' 2>/dev/null || true)"
    echo "$(date -u +%FT%TZ) $target seconds=$((end - start)) cpu_seconds=${cpu_seconds:-?}" \
        "crashes=$crashes last=\"$last\"" >>runs.log
    tail -1 runs.log
    rm -f "$log" "$cpu"
    ;;
total)
    # CPU seconds fuzzed per target, over every run in runs.log.
    for target in "${targets[@]}"; do
        awk -v t="$target" '$2 == t { split($4, c, "="); s += c[2]; n++ }
            END { printf "%-14s %6.2f CPU hours in %d runs\n", t, s / 3600, n }' runs.log
    done
    ;;
list)
    printf '%s\n' "${targets[@]}"
    ;;
*)
    sed -n '2,20p' "$script" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
