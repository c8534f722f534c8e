#!/usr/bin/env bash
# CLI tests: `pml` as a user runs it. Usage: test_cli.sh PATH/TO/pml
# Prints "ok NAME" / "FAIL NAME" per case (tests/run counts them) and exits non-zero on failure.
set -u
PML=${1:?usage: test_cli.sh PATH/TO/pml}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
out=$TMP/out
err=$TMP/err

# run EXPECTED_STATUS ARGS...: runs pml, keeps stdout/stderr
run() {
    local want=$1
    shift
    timeout 120 "$PML" "$@" >"$out" 2>"$err"
    local got=$?
    if [ "$got" != "$want" ]; then
        echo "  pml $*: exit $got, expected $want; stderr: $(head -c 400 "$err")" >&2
        return 1
    fi
}
has() { # has FILE TEXT
    grep -qF -- "$2" "$1" || { echo "  $1 lacks '$2': $(head -c 400 "$1")" >&2; return 1; }
}
one_line() { # the error is one line
    [ "$(wc -l <"$err")" -eq 1 ] || { echo "  stderr has $(wc -l <"$err") lines" >&2; return 1; }
}
case_() { # case_ NAME COMMAND...
    local name=$1
    shift
    if "$@"; then
        echo "ok $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        failed=$((failed + 1))
    fi
}

t_help() {
    run 0 --help && has "$out" "train MODEL" && has "$out" "mlp" && has "$out" "fashion-cnn" &&
        has "$out" "flowers-cnn" && has "$out" "inception-v3" && has "$out" "resnet50"
}
t_train_help() {
    run 0 train --help || return 1
    local f
    for f in --epochs --batch --optimizer --lr --momentum --seed --threads --data \
        --validation-split --max-steps --json --train-samples --test-samples --check-numerics; do
        has "$out" "$f" || return 1
    done
}
t_no_command() { run 2 && has "$err" "usage"; }
t_unknown_command() { run 2 fly && has "$err" "unknown command 'fly'"; }
t_missing_model() { run 2 train && has "$err" "missing MODEL"; }
t_unknown_model() { run 1 train resnet9000 && has "$err" "unknown model 'resnet9000'" && one_line; }
t_unknown_param() {
    run 1 train mlp:unitz=5 && has "$err" "unknown parameter 'unitz'" && one_line
}
t_bad_param_value() { run 1 train mlp:units=0 && has "$err" "units=0" && one_line; }
t_negative_epochs() { run 2 train mlp --epochs -1 && has "$err" "--epochs '-1'" && one_line; }
t_zero_batch() { run 2 train mlp --batch 0 && has "$err" "--batch '0'" && one_line; }
t_split_one() {
    run 2 train mlp --validation-split 1 && has "$err" "--validation-split '1'" && one_line &&
        run 2 train mlp --validation-split 0 && run 2 train mlp --validation-split x
}
t_bad_optimizer() { run 2 train mlp --optimizer rmsprop && has "$err" "adam or sgd"; }
t_bad_threads() { run 2 train mlp --threads 0 && has "$err" "--threads '0'"; }
t_unknown_flag() { run 2 train mlp --frobnicate && has "$err" "unknown option '--frobnicate'"; }
t_missing_value() { run 2 train mlp --lr && has "$err" "--lr needs a value"; }
t_momentum_needs_sgd() { run 2 train mlp --momentum 0.9 && has "$err" "sgd"; }
t_missing_data_dir() {
    run 1 train mlp --data "$TMP/nowhere" && has "$err" "$TMP/nowhere" && one_line
}
# a copy of the real dataset folder whose training images the case then breaks
fake_dir() {
    mkdir -p "$1"
    cp /usr/share/datasets/fashion-mnist/*labels* /usr/share/datasets/fashion-mnist/t10k-* "$1"/
}
t_truncated_idx() {
    local d=$TMP/trunc
    fake_dir "$d"
    # a valid header for 60000 images of 28x28, then only 10 bytes of pixels
    printf '\x00\x00\x08\x03\x00\x00\xea\x60\x00\x00\x00\x1c\x00\x00\x00\x1c0123456789' \
        >"$d/train-images-idx3-ubyte"
    run 1 train mlp --data "$d" && has "$err" "train-images-idx3-ubyte" && one_line
}
t_wrong_magic() {
    local d=$TMP/magic
    fake_dir "$d"
    printf 'GIF89a-not-an-idx-file' | gzip >"$d/train-images-idx3-ubyte.gz"
    run 1 train mlp --data "$d" && has "$err" "train-images-idx3-ubyte.gz" && has "$err" "magic"
}
t_no_default_data() { run 1 train flowers-cnn && has "$err" "--data synthetic"; }
t_json_run() {
    run 0 train mlp:units=32 --train-samples 500 --test-samples 200 --epochs 2 --threads 2 \
        --json --validation-split 0.2 || return 1
    python3 - "$out" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
j = json.loads(text)  # stdout holds exactly one JSON object
assert text.count("\n") == 1, "one line"
assert j["model"] == "mlp:units=32" and j["threads"] == 2 and j["batch"] == 32, j
assert len(j["epochs"]) == 2, j
for i, e in enumerate(j["epochs"]):
    assert e["epoch"] == i + 1 and e["samples"] == 400, e
    assert 0 < e["loss"] < 3 and 0 <= e["accuracy"] <= 1 and e["seconds"] > 0, e
    assert 0 < e["val_loss"] < 3 and 0 <= e["val_accuracy"] <= 1, e
assert j["epochs"][1]["loss"] < j["epochs"][0]["loss"]
assert 0.5 < j["test_accuracy"] <= 1 and j["test_loss"] > 0, j
PY
}
t_text_run() {
    run 0 train mlp:units=16 --train-samples 256 --test-samples 100 --epochs 1 --seed 3 &&
        has "$out" "Epoch 1/1 - 8/8" && has "$out" "loss: " && has "$out" "accuracy: " &&
        has "$out" "Test loss: " && ! grep -q "val_loss" "$out"
}
t_max_steps() {
    run 0 train mlp:units=16 --max-steps 3 --epochs 4 --test-samples 50 --json || return 1
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert [e["samples"] for e in j["epochs"]]==[96], j' "$out"
}
t_synthetic() {
    run 0 train flowers-cnn:size=16 --data synthetic --train-samples 64 --test-samples 32 \
        --epochs 1 --batch 16 --json || return 1
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["epochs"][0]["samples"]==64 and "test_accuracy" in j' "$out"
}
t_sigint() {
    "$PML" train mlp --epochs 1000 --threads 2 >"$out" 2>"$err" &
    local pid=$!
    # wait until training has started (the header line), then interrupt
    for _ in $(seq 1 100); do grep -q "^Model" "$out" && break; sleep 0.1; done
    sleep 0.5
    kill -INT $pid
    local rc=0
    for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    if kill -0 $pid 2>/dev/null; then
        kill -9 $pid
        echo "  pml did not stop within 10 s of SIGINT" >&2
        return 1
    fi
    wait $pid
    rc=$?
    [ $rc -eq 130 ] || { echo "  exit $rc after SIGINT, expected 130" >&2; return 1; }
    has "$err" "interrupted"
}

case_ help t_help
case_ train_help t_train_help
case_ no_command t_no_command
case_ unknown_command t_unknown_command
case_ missing_model t_missing_model
case_ unknown_model t_unknown_model
case_ unknown_param t_unknown_param
case_ bad_param_value t_bad_param_value
case_ negative_epochs t_negative_epochs
case_ zero_batch t_zero_batch
case_ split_one t_split_one
case_ bad_optimizer t_bad_optimizer
case_ bad_threads t_bad_threads
case_ unknown_flag t_unknown_flag
case_ missing_value t_missing_value
case_ momentum_needs_sgd t_momentum_needs_sgd
case_ missing_data_dir t_missing_data_dir
case_ truncated_idx t_truncated_idx
case_ wrong_magic t_wrong_magic
case_ no_default_data t_no_default_data
case_ json_run t_json_run
case_ text_run t_text_run
case_ max_steps t_max_steps
case_ synthetic t_synthetic
case_ sigint t_sigint

echo "# $passed passed, $failed failed"
[ "$failed" -eq 0 ]
