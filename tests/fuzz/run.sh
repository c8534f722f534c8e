#!/usr/bin/env bash
# Builds the libFuzzer harness for the model DOT reader with clang (ASan + UBSan) and runs it.
# Not part of the test suite (tests/test_dot.c has a deterministic mutation loop that is).
#   tests/fuzz/run.sh [SECONDS] [libFuzzer options...]     (default: 60 seconds)
# Needs clang and libclang-rt-14-dev (Debian). Findings go to build-fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
shift || true
out=build-fuzz
mkdir -p $out/corpus $out/crashes
# clang does not define __SANITIZE_ADDRESS__ (ops/kernels.h then skips its target_clones)
flags="-g -O1 -std=gnu11 -D_GNU_SOURCE -D__SANITIZE_ADDRESS__=1 -I. -Iops -Imodels -fsanitize=address,undefined -fno-sanitize-recover=undefined"
libs="$(pkg-config --libs libcgraph libgvc openblas zlib) -lm -lpthread"
objs=()
for f in ops/*.c models/*.c; do
    o=$out/$(echo "$f" | tr / _).o
    clang $flags -fsanitize=fuzzer-no-link -c "$f" -o "$o"
    objs+=("$o")
done
clang $flags -fsanitize=fuzzer tests/fuzz/fuzz_model_dot.c "${objs[@]}" $libs -o $out/fuzz_model_dot
cp models/zoo/*.dot tests/fixtures/models/*.dot $out/corpus/ 2>/dev/null || true
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
exec $out/fuzz_model_dot -max_total_time="$secs" -dict=tests/fuzz/dot.dict -max_len=65536 \
    -artifact_prefix=$out/crashes/ -print_final_stats=1 "$@" $out/corpus
