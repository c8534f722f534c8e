#!/usr/bin/env bash
# Builds the libFuzzer harnesses for the model DOT reader and the ONNX importer with clang
# (ASan + UBSan) and runs one. Not part of the test suite (tests/test_dot.c and test_onnx.c have
# deterministic mutation loops that are).
#   tests/fuzz/run.sh [SECONDS] [libFuzzer options...]     (default: 60 seconds; the DOT reader)
#   FUZZ=onnx tests/fuzz/run.sh [SECONDS] ...              (the ONNX importer; corpus: ONNX's test
#                                                            data, Debian libonnx-testdata)
# Needs clang and libclang-rt-14-dev (Debian). Findings go to build-fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
shift || true
out=build-fuzz
mkdir -p $out/corpus $out/corpus-onnx $out/crashes
# the ONNX importer's protobuf code, generated as the build does (models/meson.build)
protoc-c --c_out=$out --proto_path=/usr/include/onnx /usr/include/onnx/onnx.proto
# clang does not define __SANITIZE_ADDRESS__ (ops/kernels.h then skips its target_clones)
flags="-g -O1 -std=gnu11 -D_GNU_SOURCE -D__SANITIZE_ADDRESS__=1 -DPML_HAVE_ONNX=1 -DPML_VERSION=\"fuzz\" -I. -Iops -Imodels -I$out -fsanitize=address,undefined -fno-sanitize-recover=undefined"
libs="$(pkg-config --libs libcgraph libgvc openblas zlib libprotobuf-c) -lm -lpthread"
objs=()
for f in ops/*.c models/*.c $out/onnx.pb-c.c; do
    o=$out/$(basename "$f" .c).o
    clang $flags -fsanitize=fuzzer-no-link -c "$f" -o "$o"
    objs+=("$o")
done
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
if [ "${FUZZ:-dot}" = onnx ]; then
    clang $flags -fsanitize=fuzzer tests/fuzz/fuzz_onnx.c "${objs[@]}" $libs -o $out/fuzz_onnx
    for m in /usr/include/onnx/backend/test/data/{node,pytorch-converted}/*/model.onnx; do
        [ -f "$m" ] && cp "$m" "$out/corpus-onnx/$(basename "$(dirname "$m")").onnx"
    done
    exec $out/fuzz_onnx -max_total_time="$secs" -max_len=65536 -artifact_prefix=$out/crashes/ \
        -print_final_stats=1 "$@" $out/corpus-onnx
fi
clang $flags -fsanitize=fuzzer tests/fuzz/fuzz_model_dot.c "${objs[@]}" $libs -o $out/fuzz_model_dot
cp models/zoo/*.dot tests/fixtures/models/*.dot $out/corpus/ 2>/dev/null || true
exec $out/fuzz_model_dot -max_total_time="$secs" -dict=tests/fuzz/dot.dict -max_len=65536 \
    -artifact_prefix=$out/crashes/ -print_final_stats=1 "$@" $out/corpus
