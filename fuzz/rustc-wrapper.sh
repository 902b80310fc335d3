#!/bin/sh
# rustc wrapper for fuzz builds (cargo's RUSTC_WRAPPER). Coverage instrumentation, debug
# assertions and overflow checks go into trailhound and the fuzz targets only: the
# dependencies build exactly as in a release build, so the fuzz build costs one crate more
# than a normal one, not a second DataFusion. These are stable `-C` options: no nightly.
rustc="$1"
shift
case " $* " in
*" --crate-name trailhound "* | *" --crate-name fuzz_"*)
    exec "$rustc" "$@" \
        -Cpasses=sancov-module \
        -Cllvm-args=-sanitizer-coverage-level=4 \
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
        -Cllvm-args=-sanitizer-coverage-pc-table \
        -Cllvm-args=-sanitizer-coverage-trace-compares \
        -Cdebug-assertions \
        -Coverflow-checks
    ;;
esac
exec "$rustc" "$@"
