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
skipped=0
case_() { # case_ NAME COMMAND...; a case that cannot check here returns 77 (it says why)
    local name=$1 rc
    shift
    # PML_CLI_ONLY=REGEX runs only the cases whose names match (while working on them)
    if [ -n "${PML_CLI_ONLY:-}" ] && ! [[ $name =~ $PML_CLI_ONLY ]]; then return 0; fi
    "$@"
    rc=$?
    if [ $rc -eq 0 ]; then
        echo "ok $name"
        passed=$((passed + 1))
    elif [ $rc -eq 77 ]; then
        echo "skip $name"
        skipped=$((skipped + 1))
    else
        echo "FAIL $name"
        failed=$((failed + 1))
    fi
}
sanitized() { # the pml under test is built with a sanitizer (which needs much address space)
    ldd "$PML" 2>/dev/null | grep -q "lib[at]san" || nm "$PML" 2>/dev/null | grep -q __asan_init
}

t_help() {
    run 0 --help && has "$out" "train MODEL" && has "$out" "mlp" && has "$out" "fashion-cnn" &&
        has "$out" "flowers-cnn" && has "$out" "inception-v3" && has "$out" "resnet50"
}
t_train_help() {
    run 0 train --help || return 1
    local f
    for f in --epochs --batch --optimizer --lr --momentum --seed --threads --data \
        --validation-split --max-steps --json --train-samples --test-samples --check-numerics \
        --machine --sync --servers --bucket-mb --trace --plan --skip-bad; do
        has "$out" "$f" || return 1
    done
}
t_no_command() { run 2 && has "$err" "usage"; }
t_unknown_command() { run 2 fly && has "$err" "unknown command 'fly'"; }
t_missing_model() { run 2 train && has "$err" "missing MODEL"; }
t_unknown_model() { run 2 train resnet9000 && has "$err" "unknown model 'resnet9000'" && one_line; }
t_unknown_param() {
    run 2 train mlp:unitz=5 && has "$err" "unknown parameter 'unitz'" && one_line
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
# ---- image folders (--data DIR of class subfolders of JPEG and PNG files)
# image_folder DIR N CLASS...: N PNGs per class (a solid colour per class, sizes varying) written
# by Python's standard library, a JPEG per class drawn by Graphviz's dot, and a LICENSE.txt
image_folder() {
    local dir=$1 n=$2
    shift 2
    python3 - "$dir" "$n" "$@" <<'PY' || return 1
import os, struct, sys, zlib
root, n, classes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
def png(path, w, h, rgb):
    rows = b"".join(b"\0" + bytes(rgb) * w for _ in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
os.makedirs(root, exist_ok=True)
open(os.path.join(root, "LICENSE.txt"), "w").write("CC-BY\n")
for k, name in enumerate(classes):
    os.makedirs(os.path.join(root, name), exist_ok=True)
    for i in range(n):
        png(os.path.join(root, name, "%03d.png" % i), 12 + i % 5, 10 + i % 3,
            (60 * k % 256, 255 - 60 * k % 256, (20 * i) % 256))
PY
    local c
    for c in "$@"; do
        echo "digraph { bgcolor=\"#$(printf '%02x' $((${#c} * 30 % 256)))4080\"; a }" |
            dot -Tjpg -o "$dir/$c/drawn.jpg" || return 1
    done
}
t_image_folder() {
    local d=$TMP/flowers a="flowers-cnn:size=16,classes=3 --epochs 1 --batch 8 --plan none --threads 1"
    image_folder "$d" 7 daisy roses tulips || return 1
    run 0 train $a --data "$d" --validation-split 0.25 --json || return 1
    python3 - "$out" <<'PY' || return 1
import json, sys
j = json.load(open(sys.argv[1]))
e = j["epochs"][0]
assert e["samples"] == 18 and "val_loss" in e and "test_loss" not in j, j  # 24 images, 6 held out
PY
    run 0 train $a --data "$d" && has "$out" "data flowers: 24 train, no test set" &&
        has "$out" "Epoch 1/1" && ! grep -q "Test loss" "$out" || return 1
    # the same folder, the same numbers
    run 0 train $a --data "$d" --json && sed 's/"seconds":[^,}]*//g' "$out" >"$TMP/f1.json" &&
        run 0 train $a --data "$d" --json || return 1
    sed 's/"seconds":[^,}]*//g' "$out" | cmp -s - "$TMP/f1.json" ||
        { echo "  two runs differ: $(cat "$out") and $(cat "$TMP/f1.json")" >&2; return 1; }
    # train/ and test/: a test set; evaluate and predict take it
    image_folder "$TMP/pair/train" 6 a b c && image_folder "$TMP/pair/test" 2 a b c || return 1
    run 0 train $a --data "$TMP/pair" --save "$TMP/img.pml" --json || return 1
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["epochs"][0]["samples"]==21 and "test_loss" in j, j' "$out" || return 1
    run 0 evaluate "$TMP/img.pml" --data "$TMP/pair" && has "$out" "data pair test: 9 test samples" || return 1
    run 0 predict "$TMP/img.pml" --data "$TMP/pair/test" && [ "$(wc -l <"$out")" = 9 ] || return 1
    # a model whose input has neither 1 nor 3 channels
    run 1 train mlp:size=8,channels=2,classes=3 --data "$d" && has "$err" "$d" && one_line
}
t_image_folder_bad() {
    local d=$TMP/badimg a="flowers-cnn:size=8,classes=2 --epochs 1 --batch 4 --plan none --threads 1"
    image_folder "$d" 4 cats dogs || return 1
    head -c 40 "$d/dogs/001.png" >"$d/dogs/cut.png"
    echo "not an image" >"$d/cats/x.jpeg"
    run 1 train $a --data "$d" && has "$err" "$d/cats/x.jpeg" && has "$err" "not a JPEG or PNG" &&
        one_line || return 1
    run 0 train $a --data "$d" --skip-bad && has "$err" "skipped 2 bad images" &&
        has "$out" "data badimg: 10 train" || return 1
    rm "$d/cats/x.jpeg"
    run 1 train $a --data "$d" && has "$err" "$d/dogs/cut.png" && has "$err" "truncated PNG" &&
        one_line || return 1
    mkdir "$d/empty"
    run 1 train $a --data "$d" --skip-bad && has "$err" "class folder 'empty' has no images" && one_line || return 1
    rm -r "$d/cats" "$d/empty"
    run 1 train $a --data "$d" && has "$err" "one class folder ('dogs')" && one_line || return 1
    mkdir -p "$TMP/nothing"
    run 1 train $a --data "$TMP/nothing" && has "$err" "MNIST-style" && has "$err" "class subfolders" && one_line
}
# training starts while the folder decodes: a bad file found then still fails the run with its
# message, and leaves no saved model and no checkpoint
t_image_folder_overlap_bad() {
    local d=$TMP/latebad a="flowers-cnn:size=8,classes=2 --epochs 2 --batch 2 --plan none --threads 1"
    image_folder "$d" 30 cats dogs || return 1
    echo "not an image" >"$d/dogs/zz.png"
    run 1 train $a --data "$d" --save "$TMP/late.pml" --checkpoint "$TMP/lateck" --checkpoint-every 1 &&
        has "$err" "$d/dogs/zz.png" && has "$err" "not a JPEG or PNG" && one_line || return 1
    [ ! -e "$TMP/late.pml" ] && [ -z "$(ls -A "$TMP/lateck" 2>/dev/null)" ] ||
        { echo "  a failed run left output: $(ls "$TMP/late.pml" "$TMP/lateck" 2>&1)" >&2; return 1; }
    echo "not an image either" >"$d/cats/000.png" # now the first bad file in sorted order
    run 1 train $a --data "$d" && has "$err" "$d/cats/000.png" && one_line
}
# the decoded cache: the second run reads it (a file replaced by garbage of the same size and
# mtime is not even opened), a changed mtime makes it stale, a corrupt one is decoded anew
t_image_folder_cache() {
    local d=$TMP/imgcache a="flowers-cnn:size=16,classes=3 --epochs 1 --batch 8 --plan none --threads 1"
    local c=${XDG_CACHE_HOME:-$HOME/.cache}/pml/images
    case ${XDG_CACHE_HOME:-$HOME} in /*) ;; *) echo "  no cache folder here" >&2; return 77 ;; esac
    image_folder "$d" 7 daisy roses tulips || return 1
    run 0 train $a --data "$d" --validation-split 0.25 --json &&
        sed 's/"seconds":[^,}]*//g' "$out" >"$TMP/c1.json" || return 1
    ls "$c"/imgcache-3x16x16-*.bin >/dev/null 2>&1 || { echo "  no cache file in $c" >&2; return 1; }
    local f=$d/roses/003.png
    head -c "$(stat -c %s "$f")" /dev/zero >"$TMP/zeros" && touch -r "$f" "$TMP/zeros" &&
        cp -p "$TMP/zeros" "$f" || return 1
    run 0 train $a --data "$d" --validation-split 0.25 --json || return 1
    sed 's/"seconds":[^,}]*//g' "$out" | cmp -s - "$TMP/c1.json" ||
        { echo "  the cached run differs: $(cat "$out")" >&2; return 1; }
    touch -d '2001-01-01' "$f"
    run 1 train $a --data "$d" --validation-split 0.25 && has "$err" "$f" && one_line || return 1
    rm "$f" "$d/roses/004.png" && run 0 train $a --data "$d" --validation-split 0.25 --json &&
        sed 's/"seconds":[^,}]*//g' "$out" >"$TMP/c2.json" || return 1
    local k
    for k in $c/imgcache-3x16x16-*.bin; do
        python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[-50]^=1; open(p,"wb").write(b)' "$k" || return 1
    done
    run 0 train $a --data "$d" --validation-split 0.25 --json || return 1
    sed 's/"seconds":[^,}]*//g' "$out" | cmp -s - "$TMP/c2.json" ||
        { echo "  the run after a corrupt cache differs: $(cat "$out")" >&2; return 1; }
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

# ---- charts of a run (pml train --plot)
plot_args="mlp:units=16,layers=1 --epochs 2 --train-samples 512 --test-samples 128"
t_plot_png() { # two panels of 480x360 below a title band of 30
    run 0 train $plot_args --validation-split 0.2 --plot "$TMP/c.png" && has "$out" "Test loss: " &&
        quiet || return 1
    local sig size
    sig=$(od -A n -t x1 -N 16 "$TMP/c.png" | tr -d ' \n')
    [ "$sig" = 89504e470d0a1a0a0000000d49484452 ] || { echo "  not a PNG: $sig" >&2; return 1; }
    size=$(od -A n -t u1 -j 16 -N 8 "$TMP/c.png" | awk '{print ($1*2^24+$2*2^16+$3*256+$4) "x" ($5*2^24+$6*2^16+$7*256+$8)}')
    [ "$size" = 960x390 ] || { echo "  PNG of $size, expected 960x390" >&2; return 1; }
}
t_plot_svg() { # the SVG holds the chart's text: its title, and the panels and series in <desc>
    run 0 train $plot_args --validation-split 0.2 --plot "$TMP/c.svg" &&
        run 0 train $plot_args --plot "$TMP/noval.SVG" --json || return 1
    python3 - "$TMP/c.svg" "$TMP/noval.SVG" <<'PY'
import sys, xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
def text(path):
    root = ET.parse(path).getroot()  # well-formed XML
    assert root.tag == ns + "svg" and root.get("width") == "960pt" and root.get("height") == "390pt", root.attrib
    return root.find(ns + "title").text, root.find(ns + "desc").text.splitlines()
title, desc = text(sys.argv[1])
assert title.startswith("mlp:units=16,layers=1 on fashion-mnist"), title
assert desc == ["Loss (x: epoch, y: loss): loss, val_loss",
                "Accuracy (x: epoch, y: accuracy): accuracy, val_accuracy"], desc
title, desc = text(sys.argv[2])  # without --validation-split: training only
assert desc == ["Loss (x: epoch, y: loss): loss", "Accuracy (x: epoch, y: accuracy): accuracy"], desc
PY
}
t_plot_bad_name() { # refused before anything runs
    run 0 train --help && has "$out" "--plot FILE.svg|png" || return 1
    run 2 train $plot_args --plot "$TMP/c.gif" && has "$err" "--plot '$TMP/c.gif'" && one_line &&
        [ ! -s "$out" ] && [ ! -e "$TMP/c.gif" ] &&
        run 2 train $plot_args --plot "$TMP/.png" && has "$err" "--plot '$TMP/.png'"
}
t_plot_cannot_write() { # training's results stay printed; one message naming the file; no file
    run 1 train $plot_args --plot /nonexistent-dir/c.png && has "$out" "Test loss: " && one_line &&
        has "$err" "/nonexistent-dir/c.png" && [ ! -e /nonexistent-dir/c.png ] || return 1
    mkdir -p "$TMP/plots/d.svg"
    run 1 train $plot_args --plot "$TMP/plots/d.svg" && has "$out" "Test loss: " && one_line &&
        has "$err" "$TMP/plots/d.svg" && [ -d "$TMP/plots/d.svg" ] &&
        [ "$(ls -A "$TMP/plots")" = d.svg ]
}
t_plot_sigint() { # a run stopped by Ctrl-C draws the epochs it ran
    "$PML" train mlp:units=16,layers=1 --train-samples 2000 --test-samples 100 --epochs 100000 \
        --plot "$TMP/stopped.png" >"$out" 2>"$err" &
    local pid=$! rc
    for _ in $(seq 1 100); do grep -q "^Epoch 2/" "$out" && break; sleep 0.1; done
    kill -INT $pid
    wait $pid
    rc=$?
    [ $rc -eq 130 ] || { echo "  exit $rc after SIGINT, expected 130: $(head -c 400 "$err")" >&2; return 1; }
    [ "$(od -A n -t x1 -N 4 "$TMP/stopped.png" | tr -d ' ')" = 89504e47 ] ||
        { echo "  no chart after SIGINT" >&2; return 1; }
}

# ---- model files and drawings (pml export, pml viz, MODEL as a .dot file)
quiet() { [ ! -s "$err" ] || { echo "  stderr: $(head -c 400 "$err")" >&2; return 1; }; }
t_export_help() { run 0 export --help && has "$out" "-o, --output" && has "$out" "models/models.h"; }
t_export_zoo() { # pml export writes the shipped models/zoo files byte for byte
    local m
    for m in mlp fashion-cnn flowers-cnn alexnet vgg16 resnet50 inception-v3; do
        run 0 export "$m" -o "$TMP/$m.dot" && quiet && cmp "$TMP/$m.dot" "../models/zoo/$m.dot" ||
            return 1
    done
}
t_export_train() { # a written model trains like the zoo model
    run 0 export mlp:units=16 -o "$TMP/m16.dot" && has "$TMP/m16.dot" "out=16" &&
        run 0 train "$TMP/m16.dot" --train-samples 256 --test-samples 100 --epochs 1 &&
        has "$out" "Model mlp: 12730 parameters" && has "$out" "Test loss: "
}
t_export_stdout() { run 0 export fashion-cnn -o - && has "$out" "digraph \"fashion-cnn\" {"; }
t_export_errors() {
    run 2 export mlp && has "$err" "missing -o" && one_line || return 1
    run 2 export -o "$TMP/x.dot" && has "$err" "missing MODEL" || return 1
    run 2 export mlp -o "$TMP/x.svg" && has "$err" "pml viz" && one_line || return 1
    run 2 export resnet9000 -o "$TMP/x.dot" && has "$err" "unknown model 'resnet9000'" &&
        one_line || return 1
    run 1 export mlp -o "$TMP/nowhere/x.dot" && has "$err" "$TMP/nowhere/x.dot" && one_line &&
        [ ! -e "$TMP/x.dot" ] && [ ! -e "$TMP/nowhere" ]
}
t_export_keeps_old() { # a failed export leaves the previous file as it was
    echo old >"$TMP/keep.dot"
    run 1 export fixtures/models/cycle.dot -o "$TMP/keep.dot" && [ "$(cat "$TMP/keep.dot")" = old ] &&
        [ "$(ls -A "$TMP" | grep -c '\.tmp-')" = 0 ]
}
t_bad_model_files() { # every bad fixture: exit 1, one line naming the file, no crash
    local f
    for f in fixtures/models/*.dot; do
        case $f in */good_*) continue ;; esac
        run 1 train "$f" && has "$err" "pml train: $f: " && one_line || return 1
    done
    run 1 train fixtures/models/dangling_edge.dot && has "$err" "node 'ghost'"
}
t_good_model_file() {
    run 0 train fixtures/models/good_branches.dot --data synthetic --train-samples 32 \
        --test-samples 16 --epochs 1 --batch 16 && has "$out" "Model branches: 6117 parameters"
}
t_viz_help() { run 0 viz --help && has "$out" "--collapse" && has "$out" ".svg, .png, .pdf"; }
# svg_ops FILE.svg MODEL: the SVG parses as XML and names every operator of MODEL
svg_ops() {
    "$PML" export "$2" -o "$TMP/ops.dot" || return 1
    python3 - "$1" "$TMP/ops.dot" <<'PY'
import re, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
texts = {t.text for t in root.iter(ns + "text")}
names = re.findall(r'^    "?([^"\s]+)"? \[op=', open(sys.argv[2]).read(), re.M)
assert len(names) > 3, names
missing = [n for n in names if n not in texts]
assert not missing, f"not drawn: {missing[:5]}"
nodes = [g for g in root.iter(ns + "g") if g.get("class") == "node"]
assert len(nodes) == len(names), (len(nodes), len(names))
PY
}
t_viz_svg() {
    run 0 viz resnet50 -o "$TMP/r.svg" && quiet && svg_ops "$TMP/r.svg" resnet50 &&
        grep -q "25,557,032 parameters, 8.24 GFLOP per sample" "$TMP/r.svg" &&
        grep -q ">64x56x56<" "$TMP/r.svg" # an edge's tensor shape
}
t_viz_dot_file() {
    run 0 viz fixtures/models/good_branches.dot -o "$TMP/b.svg" && quiet &&
        svg_ops "$TMP/b.svg" fixtures/models/good_branches.dot
}
t_viz_png() {
    run 0 viz fashion-cnn -o "$TMP/f.png" && quiet || return 1
    python3 - "$TMP/f.png" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n", d[:8]
length, kind, w, h = struct.unpack(">I4sII", d[8:24])
assert length == 13 and kind == b"IHDR", (length, kind)
assert 200 <= w <= 5000 and 400 <= h <= 20000, (w, h)
assert d[-8:-4] == b"IEND", "truncated"
PY
}
t_viz_pdf() { run 0 viz mlp -o "$TMP/m.pdf" && quiet && [ "$(head -c 5 "$TMP/m.pdf")" = "%PDF-" ]; }
t_viz_dot() { run 0 viz mlp -o "$TMP/m.dot" && quiet && has "$TMP/m.dot" "pos=\"" && has "$TMP/m.dot" "bb=\""; }
t_viz_collapse() {
    local m full folded
    for m in resnet50 inception-v3; do
        run 0 viz $m -o "$TMP/full.svg" && run 0 viz $m --collapse -o "$TMP/folded.svg" || return 1
        full=$(grep -c 'class="node"' "$TMP/full.svg")
        folded=$(grep -c 'class="node"' "$TMP/folded.svg")
        [ "$folded" -lt "$full" ] || { echo "  $m: $folded nodes collapsed, $full in full" >&2; return 1; }
    done
    grep -q ">Mixed_7c<" "$TMP/folded.svg" && grep -q ">block of 31 ops: " "$TMP/folded.svg"
}
t_viz_errors() {
    run 2 viz mlp && has "$err" "missing -o" && one_line || return 1
    run 2 viz -o "$TMP/e.svg" && has "$err" "missing GRAPH" || return 1
    run 2 viz mlp -o "$TMP/e.jpg" && has "$err" "'.jpg'" && has "$err" ".svg, .png, .pdf or .dot" &&
        one_line && [ ! -e "$TMP/e.jpg" ] || return 1
    run 2 viz mlp -o "$TMP/noext" && has "$err" "no extension" && [ ! -e "$TMP/noext" ] || return 1
    run 1 viz mlp -o "$TMP/nodir/e.svg" && has "$err" "$TMP/nodir/e.svg" && one_line &&
        [ ! -e "$TMP/nodir" ] || return 1
    run 1 viz fixtures/models/shape_mismatch.dot -o "$TMP/e.svg" &&
        has "$err" "fixtures/models/shape_mismatch.dot: node 'sum' (add)" && one_line &&
        [ ! -e "$TMP/e.svg" ] || return 1
    # a kind=plan file is drawn as a plan; this one is a broken one
    run 1 viz fixtures/models/kind_plan.dot -o "$TMP/e.svg" && has "$err" "fixtures/models/kind_plan.dot: " && one_line &&
        [ ! -e "$TMP/e.svg" ] || return 1
    echo old >"$TMP/old.svg" # a failed drawing leaves the previous file as it was
    run 1 viz fixtures/models/binary.dot -o "$TMP/old.svg" && [ "$(cat "$TMP/old.svg")" = old ] &&
        [ "$(ls -A "$TMP" | grep -c '\.tmp-')" = 0 ]
}

# ---- pml topo
t_topo_help() {
    run 0 topo --help && has "$out" "--machine" && has "$out" "flexflow-k80" && has "$out" "synthetic:" &&
        has "$out" "--json" && has "$out" "-o" && run 0 --help && has "$out" "topo"
}
t_topo_named() {
    run 0 topo --machine flexflow-k80 && has "$out" "machine flexflow-k80" &&
        has "$out" "64 compute devices" && has "$out" "node15/gpu3" &&
        has "$out" "node15/nic -- network" && has "$out" "7 GB/s" &&
        has "$out" "6 hops (node0/pcie, node0/nic, network, node1/nic, node1/pcie)" || return 1
    run 0 topo --machine "synthetic:pack:2 core:4 pu:1" && has "$out" "8 compute devices" &&
        has "$out" "pkg0/mem -- pkg1/mem"
}
t_topo_this() {
    (
        export XDG_CACHE_HOME="$TMP/cache"
        run 0 topo && has "$out" "machine this" && has "$out" "(present)" &&
            has "$out" "measured now" || return 1
        local busy=0 k
        if grep -qF "while others were busy" "$out"; then
            # measured on a busy machine: cached as provisional, measured again next time
            busy=1
            grep -q "^provisional 1$" "$TMP"/cache/pml/machine-*.txt || {
                echo "  busy, not provisional: $(head -c 300 "$TMP"/cache/pml/machine-*.txt)" >&2
                return 1
            }
        fi
        # later runs read the cache; one measures again when the cache is provisional or the
        # machine runs clearly faster than it says (a shared machine drifts): a few runs in turn
        for k in 1 2 3 4; do
            run 0 topo || return 1
            grep -qF "from the cache" "$out" && break
            has "$out" "measured now" || return 1
            [ $k = 4 ] && [ $busy = 0 ] && { echo "  never read from the cache" >&2; return 1; }
        done
        [ "$(ls "$TMP/cache/pml" | grep -c '^machine-.*\.txt$')" = 1 ] ||
            { echo "  cache folder: $(ls "$TMP/cache/pml" | tr '\n' ' ')" >&2; return 1; }
    )
}
t_topo_json() {
    run 0 topo --machine flexflow-p100 --json || return 1
    python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["name"] == "flexflow-p100" and len(j["fingerprint"]) == 16, j
assert len(j["devices"]) == 21 and len(j["links"]) == 44, (len(j["devices"]), len(j["links"]))
gpus = [d for d in j["devices"] if d["kind"] == "gpu"]
assert len(gpus) == 16 and all(d["flops"] == 9.3e12 and d["mem_bw"] == 732e9 for d in gpus)
assert {l["bw"] for l in j["links"]} == {20e9, 12e9, 12.5e9}
r = {x["to"]: x for x in j["routes"]}
assert r["node0/gpu1"]["bw"] == 20e9 and r["node0/gpu1"]["hops"] == 1
assert r["node3/gpu3"]["bw"] == 12e9 and r["node3/gpu3"]["hops"] == 4
' "$out"
}
t_topo_write_load() {
    run 0 topo --machine flexflow-k80 --json -o "$TMP/k80.dot" && cp "$out" "$TMP/a.json" &&
        has "$TMP/k80.dot" "kind=machine" && run 0 topo --machine "$TMP/k80.dot" --json || return 1
    python3 -c '
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
assert a["fingerprint"] == b["fingerprint"] and a["devices"] == b["devices"] and a["links"] == b["links"]
' "$TMP/a.json" "$out" || return 1
    run 0 topo --machine fixtures/machines/good_template_cpu.dot -o - && has "$out" 'digraph "cpu_cluster"' &&
        has "$out" '"node3/core7" [kind=cpu, node_id=3' && ! has "$out" "machine cpu_cluster" 2>/dev/null
}
t_topo_bad_machine() {
    run 2 topo --machine flexflow-v100 -o "$TMP/bad.dot" && one_line &&
        has "$err" "unknown machine 'flexflow-v100'" && has "$err" "flexflow-k80" &&
        [ ! -e "$TMP/bad.dot" ] || return 1
    run 1 topo --machine fixtures/machines/bad_zero_bw.dot -o "$TMP/bad.dot" && one_line &&
        has "$err" "fixtures/machines/bad_zero_bw.dot: link 'g0' -> 'g1': bw='0'" &&
        [ ! -e "$TMP/bad.dot" ] || return 1
    run 1 topo --machine fixtures/machines/bad_binary.dot && one_line && has "$err" "not a DOT file" || return 1
    run 1 topo --machine "synthetic:pack:2 bogus:3" && one_line && has "$err" "synthetic" || return 1
    run 1 topo --machine fixtures/machines/bad_malformed.xml && one_line && has "$err" "malformed hwloc XML" || return 1
    echo old >"$TMP/old.dot" # an unwritable folder: no file, and the old one stays
    run 1 topo --machine cpu-1socket -o "$TMP/nodir/m.dot" && one_line && has "$err" "$TMP/nodir/m.dot" &&
        [ ! -e "$TMP/nodir" ] && [ "$(cat "$TMP/old.dot")" = old ] &&
        [ "$(ls -A "$TMP" | grep -c '\.tmp-')" = 0 ]
}
t_viz_machine() {
    run 0 viz flexflow-k80 -o "$TMP/k80.svg" && grep -q ">node15/gpu3<" "$TMP/k80.svg" &&
        grep -q ">7 GB/s" "$TMP/k80.svg" || return 1
    run 0 topo --machine cpu-2socket -o "$TMP/c2.dot" && run 0 viz "$TMP/c2.dot" -o "$TMP/c2.png" &&
        [ "$(head -c 4 "$TMP/c2.png" | od -An -c | tr -d ' ')" = '211PNG' ] || return 1
    run 0 viz "synthetic:pack:1 core:2 pu:1" -o "$TMP/s.dot" && has "$TMP/s.dot" "pkg0/mem" || return 1
    run 1 viz fixtures/machines/bad_missing_flops.dot -o "$TMP/bad.svg" && one_line &&
        has "$err" "missing attribute flops" && [ ! -e "$TMP/bad.svg" ]
}
t_topo_usage() {
    run 2 topo -o "$TMP/m.svg" && has "$err" "cluster DOT file" && one_line && [ ! -e "$TMP/m.svg" ] || return 1
    run 2 topo --frobnicate && has "$err" "unknown option '--frobnicate'" || return 1
    run 2 topo --machine && has "$err" "--machine needs a value" || return 1
    run 2 topo --machine cpu-1socket cpu-2socket && one_line
}

# ---- pml compile, pml simulate, plan files
# the plans and measured costs of these cases stay in $TMP
plan_env() { export XDG_CACHE_HOME="$TMP/cache"; }
t_compile_help() {
    run 0 compile --help || return 1
    local f
    for f in --machine --batch --strategy --mesh --layout --budget --iterations --seed --chains \
        --sync --output --json "default 10"; do
        has "$out" "$f" || return 1
    done
    run 0 simulate --help && has "$out" "--machine" && has "$out" "--force" && has "$out" "--json" &&
        run 0 --help && has "$out" "compile MODEL" && has "$out" "simulate PLAN"
}
t_compile_simulate() { # compile to a file, then simulate the file
    run 0 compile fashion-cnn --machine cpu-2socket --batch 64 --iterations 40 -o "$TMP/f.dot" &&
        quiet && has "$out" "model fashion-cnn on machine cpu-2socket (32 devices), global batch 64" &&
        has "$out" "  data " && has "$out" "  model " && has "$out" "  owt " &&
        has "$out" "<- plan: " && has "$out" "wrote $TMP/f.dot" || return 1
    has "$TMP/f.dot" "kind=plan" && has "$TMP/f.dot" 'machine="cpu-2socket"' &&
        has "$TMP/f.dot" "batch=64" && has "$TMP/f.dot" 'strategy="search"' || return 1
    run 0 simulate "$TMP/f.dot" && quiet && has "$out" "step time " && has "$out" "samples/s" &&
        has "$out" "critical path: " && has "$out" "fwd conv1 part " && has "$out" "peak memory" &&
        has "$out" "core0" || return 1
    # a plan's model planned again, for another machine and batch
    run 0 compile "$TMP/f.dot" --machine cpu-1socket --batch 32 --strategy owt -o "$TMP/f2.dot" &&
        has "$out" "model fashion-cnn on machine cpu-1socket (16 devices), global batch 32" &&
        has "$TMP/f2.dot" 'machine="cpu-1socket"'
}
t_compile_reference_cluster() { # the study's cluster: 10 VMs of three kinds, every strategy timed
    run 0 topo --machine reference-cluster && has "$out" "76 compute devices (76 cpu, 0 gpu)" &&
        has "$out" "10 nodes" && has "$out" "node9/core3" || return 1
    run 0 compile flowers-cnn:size=64 --machine reference-cluster --batch 32 --iterations 20 \
        --seed 1 --json -o "$TMP/ref.dot" || return 1
    python3 - "$out" <<'PY'
import json, math, sys
c = json.loads(open(sys.argv[1]).read())
assert c["machine"] == "reference-cluster" and c["device_count"] == 76, c
b = c["baselines"]
for k in ("data", "model", "owt"):
    assert math.isfinite(b[k]) and b[k] > 0, (k, b[k])
assert 0 < c["step_seconds"] <= min(b.values()) * 1.000001
PY
}

t_compile_parameter_servers() { # the study's layout beside all-reduce data parallel and the search
    run 0 topo --machine reference-cluster || return 1
    grep -q "node7/core0 .* parameter server" "$out" && ! grep -q "node6/core0 .* parameter server" "$out" ||
        { echo "  topo does not mark the servers" >&2; return 1; }
    run 0 compile flowers-cnn:size=64 --machine reference-cluster --batch 32 --iterations 20 \
        --seed 1 -o "$TMP/ref.dot" || return 1
    has "$out" "global batch 32, gradients all-reduced" &&
        has "$out" "32 workers, 12 parameter servers" || return 1
    python3 - "$out" <<'PY' || return 1
import math, re, sys
unit = {"s": 1, "ms": 1e-3, "us": 1e-6, "\u00b5s": 1e-6, "ns": 1e-9}
rows = {}
for line in open(sys.argv[1], encoding="utf-8"):
    m = re.match(r"  (\w+) +([0-9.]+) (\S+) +([0-9.,]+) +([0-9.]+)x", line)
    if m:
        rows[m.group(1)] = (float(m.group(2)) * unit[m.group(3)], float(m.group(4).replace(",", "")))
assert {"data", "ps", "search"} <= set(rows), rows
for k in ("data", "ps", "search"):
    t, sps = rows[k]
    assert math.isfinite(t) and t > 0, (k, t)
    assert abs(32 / t - sps) / sps < 0.02, (k, t, sps)  # samples/s is the batch over the step
assert rows["search"][0] <= rows["data"][0], rows
PY
    run 0 compile flowers-cnn:size=64 --machine reference-cluster --batch 32 --strategy ps \
        --json -o "$TMP/ps.dot" || return 1
    python3 - "$out" <<'PY' || return 1
import json, math, sys
c = json.loads(open(sys.argv[1]).read())
assert c["strategy"] == "ps" and c["sync"] == "ps", c
b = c["baselines"]
assert set(b) == {"data", "model", "owt", "ps"}, b
assert math.isfinite(b["ps"]) and b["ps"] > 0 and c["step_seconds"] == b["ps"], c
PY
    has "$TMP/ps.dot" 'strategy="ps"' && has "$TMP/ps.dot" "sync=ps" || return 1
    # the servers (compute devices 64-75) hold no replica; the workers 0-63 compute
    grep -q 'devices="[0-9,-]*\(6[4-9]\|7[0-5]\)' "$TMP/ps.dot" &&
        { echo "  a part on a server" >&2; return 1; }
    run 0 simulate "$TMP/ps.dot" && has "$out" "strategy ps, parameter servers" &&
        has "$out" "node7/core0" || return 1
    # a machine without servers has no ps layout; ps and --sync allreduce contradict
    run 1 compile fashion-cnn --machine cpu-2socket --batch 32 --strategy ps -o "$TMP/x.dot" &&
        has "$err" "machine 'cpu-2socket' has no parameter servers" && one_line &&
        [ ! -e "$TMP/x.dot" ] || return 1
    run 0 compile fashion-cnn --machine cpu-2socket --batch 32 --strategy data -o "$TMP/x.dot" &&
        ! grep -q "  ps " "$out" || return 1
    run 2 compile fashion-cnn --machine reference-cluster --batch 32 --strategy ps \
        --sync allreduce -o "$TMP/x.dot" && has "$err" "--strategy ps" && one_line
}

t_compile_json() {
    run 0 compile alexnet --machine flexflow-p100 --batch 256 --iterations 30 --seed 5 \
        --mesh 4x4 --layout sample:0,parameter:1 --json -o "$TMP/a.dot" || return 1
    cp "$out" "$TMP/compile.json"
    run 0 simulate "$TMP/a.dot" --json || return 1
    python3 - "$TMP/compile.json" "$out" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
c = json.loads(text)
assert text.count("\n") == 1, "one line"
for k in ("version", "model", "machine", "device_count", "batch", "strategy", "step_seconds", "samples_per_second",
          "search_seconds", "iterations", "baselines", "fingerprint", "sync", "output"):
    assert k in c, k
assert c["model"] == "alexnet" and c["machine"] == "flexflow-p100" and c["device_count"] == 16, c
assert c["batch"] == 256 and c["strategy"] == "search" and c["sync"] == "allreduce", c
assert c["iterations"] == 60 and c["search_seconds"] > 0, c   # 30 per chain, 2 chains
b = c["baselines"]
assert set(b) == {"data", "model", "owt", "mesh"}, b
assert all(v > 0 for v in b.values()), b
assert 0 < c["step_seconds"] <= min(b.values()), (c["step_seconds"], b)  # never worse
assert abs(c["samples_per_second"] * c["step_seconds"] - 256) < 1e-4, c
s = json.load(open(sys.argv[2]))
assert s["step_seconds"] == c["step_seconds"], (s["step_seconds"], c["step_seconds"])
assert s["machine"] == "flexflow-p100" and s["fingerprint"] == c["fingerprint"], s
assert len(s["devices"]) == 16, len(s["devices"])
for d in s["devices"]:
    for k in ("name", "busy", "compute", "transfer", "sync", "memory", "memory_capacity"):
        assert k in d, (k, d)
    assert 0 <= d["busy"] <= s["step_seconds"] * (1 + 1e-9) and 0 < d["memory"] <= d["memory_capacity"], d
assert set(s["kinds"]) == {"fwd", "bwd", "xfer", "sync", "update"}, s["kinds"]
cp = s["critical_path"]
assert set(cp["kinds"]) == set(s["kinds"]) and cp["tasks"] > 0, cp
assert 0 < cp["seconds"] <= s["step_seconds"] * (1 + 1e-9), cp
assert cp["first"][0]["start"] == 0 and abs(cp["last"][-1]["end"] - s["step_seconds"]) < 1e-12, cp
assert all(t["kind"] in s["kinds"] and "op" in t for t in cp["first"] + cp["last"]), cp
PY
}
t_compile_reproducible() { # an iteration budget and a seed: the same plan every time
    run 0 compile mlp --machine cpu-1socket --batch 48 --iterations 60 --seed 9 -o "$TMP/r1.dot" &&
        run 0 compile mlp --machine cpu-1socket --batch 48 --iterations 60 --seed 9 -o "$TMP/r2.dot" &&
        cmp "$TMP/r1.dot" "$TMP/r2.dot"
}
t_compile_baselines() { # a baseline as the plan: its step is the baseline's
    local s
    for s in data model owt; do
        run 0 compile resnet50:size=32 --machine flexflow-k80 --batch 128 --strategy $s --json \
            -o "$TMP/b.dot" && has "$TMP/b.dot" "strategy=\"$s\"" || return 1
        python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["strategy"]==sys.argv[2] and j["step_seconds"]==j["baselines"][sys.argv[2]] and j["search_seconds"]==0, j' "$out" $s || return 1
    done
    run 0 compile alexnet --machine flexflow-p100 --batch 64 --strategy mesh --mesh 4x4 -o "$TMP/m.dot" &&
        has "$out" "mesh 4x4" && has "$out" "<- plan" && has "$TMP/m.dot" 'strategy="mesh"' || return 1
    run 0 compile alexnet --machine flexflow-p100 --batch 64 --strategy data --sync ps -o "$TMP/ps.dot" &&
        has "$out" "parameter servers" && has "$TMP/ps.dot" "sync=ps" &&
        run 0 simulate "$TMP/ps.dot" && has "$out" "parameter servers"
}
t_compile_this() { # without --machine: this machine, its costs measured once and cached
    (
        plan_env
        run 0 compile mlp --batch 32 --iterations 20 --json -o "$TMP/this.dot" &&
            python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["machine"]=="this" and j["step_seconds"]>0, j' "$out" &&
            run 0 simulate "$TMP/this.dot" && has "$out" "machine this" &&
            ls "$TMP/cache/pml" | grep -q cost
    )
}
t_compile_errors() { # bad flags: usage errors, one line, no plan file
    local p=$TMP/e.dot
    run 2 compile mlp --batch 0 -o "$p" && has "$err" "--batch '0'" && one_line || return 1
    run 2 compile mlp --batch 8 --strategy magic -o "$p" && has "$err" "--strategy 'magic'" &&
        has "$err" "search, data, model, owt or mesh" && one_line || return 1
    run 2 compile mlp --batch 8 --mesh 3x0 -o "$p" && has "$err" "--mesh '3x0'" && one_line || return 1
    run 2 compile mlp --batch 8 --budget -1 -o "$p" && has "$err" "--budget '-1'" && one_line || return 1
    run 2 compile mlp --batch 8 --budget 0 -o "$p" && has "$err" "--budget '0'" || return 1
    run 2 compile mlp --batch 8 && has "$err" "missing -o" && one_line || return 1
    run 2 compile mlp -o "$p" && has "$err" "missing --batch" && one_line || return 1
    run 2 compile --batch 8 -o "$p" && has "$err" "missing MODEL" || return 1
    run 2 compile mlp --batch 8 -o "$TMP/e.svg" && has "$err" "pml viz" && one_line || return 1
    run 2 compile mlp --batch 8 --budget 1 --iterations 5 -o "$p" && has "$err" "give one" || return 1
    run 2 compile mlp --batch 8 --strategy data --iterations 5 -o "$p" &&
        has "$err" "for --strategy search" || return 1
    run 2 compile mlp --batch 8 --strategy mesh -o "$p" && has "$err" "needs --mesh" || return 1
    run 2 compile mlp --batch 8 --mesh 4 --layout sample:1 -o "$p" && has "$err" "axes 0 to 0" || return 1
    run 2 compile mlp --batch 8 --mesh 2x2 --layout sample:0,channels:1 -o "$p" &&
        has "$err" "'channels'" || return 1
    run 2 compile mlp --batch 8 --sync ring -o "$p" && has "$err" "allreduce or ps" || return 1
    run 2 compile mlp --batch 8 --sync ps -o "$p" && has "$err" "--strategy data" || return 1
    run 2 compile mlp --batch 8 --frobnicate -o "$p" && has "$err" "unknown option '--frobnicate'" || return 1
    [ ! -e "$p" ] && [ ! -e "$TMP/e.svg" ]
}
t_compile_failures() { # what only planning finds: exit 1, one line, no file, an old file kept
    local p=$TMP/e.dot
    run 2 compile resnet9000 --batch 8 -o "$p" && has "$err" "unknown model 'resnet9000'" && one_line || return 1
    run 2 compile mlp --machine flexflow-v100 --batch 8 -o "$p" && has "$err" "unknown machine" && one_line || return 1
    run 1 compile mlp --machine cpu-2socket --batch 8 --mesh 8x8 -o "$p" && has "$err" "64 devices" &&
        one_line || return 1
    run 1 compile vgg16 --machine "synthetic:pack:1 numa:1(memory=1MB) core:2 pu:1" --batch 2 \
        --strategy data -o "$p" && has "$err" "does not fit" && has "$err" "core0" && one_line || return 1
    run 1 compile fixtures/plans/too_few_devices.dot --batch 8 -o "$p" && one_line &&
        has "$err" "fixtures/plans/too_few_devices.dot: operator 'conv1'" || return 1
    run 1 compile mlp --machine cpu-1socket --batch 8 --strategy data -o "$TMP/nodir/p.dot" &&
        has "$err" "$TMP/nodir/p.dot" && one_line && [ ! -e "$TMP/nodir" ] || return 1
    echo old >"$TMP/old.dot"
    run 1 compile fixtures/models/cycle.dot --batch 8 -o "$TMP/old.dot" &&
        [ "$(cat "$TMP/old.dot")" = old ] && [ ! -e "$p" ] && [ "$(ls -A "$TMP" | grep -c '\.tmp-')" = 0 ]
}
t_simulate_hand_written() { # plans written or edited by hand simulate
    run 0 simulate fixtures/plans/good_tiny.dot && quiet && has "$out" "strategy hand" &&
        has "$out" "fwd" || return 1
    run 0 simulate fixtures/plans/good_moved_op.dot --json &&
        python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); d=j["devices"]; assert d[7]["compute"]>0 and d[6]["compute"]==0, d[6:8]' "$out" || return 1
    run 1 simulate fixtures/plans/good_ps.dot && has "$err" "names no machine" && one_line || return 1
    run 0 simulate fixtures/plans/good_ps.dot --machine cpu-1socket && has "$out" "parameter servers" || return 1
    # a compiled plan with one operator moved by hand
    run 0 compile fashion-cnn --machine cpu-1socket --batch 64 --strategy data -o "$TMP/d.dot" &&
        sed 's/^\(    logits .*\)config="[^"]*", devices="[^"]*"/\1config="n=1 c=1 h=1", devices="15"/' \
            "$TMP/d.dot" >"$TMP/moved.dot" && ! cmp -s "$TMP/d.dot" "$TMP/moved.dot" &&
        run 0 simulate "$TMP/moved.dot" && has "$out" "xfer" || return 1
    run 0 viz "$TMP/moved.dot" -o "$TMP/moved.svg" && grep -q "on 15 (core15)" "$TMP/moved.svg"
}
t_simulate_machines() { # another machine: refused unless --force, and then only where it fits
    run 1 simulate fixtures/plans/other_machine.dot && one_line &&
        has "$err" "fingerprint 0123456789abcdef" && has "$err" "--force" || return 1
    run 0 simulate fixtures/plans/other_machine.dot --force || return 1
    run 0 compile alexnet --machine flexflow-p100 --batch 64 --strategy data -o "$TMP/p100.dot" &&
        run 1 simulate "$TMP/p100.dot" --machine flexflow-k80 && one_line &&
        has "$err" "not for machine 'flexflow-k80'" || return 1
    run 0 simulate "$TMP/p100.dot" --machine flexflow-k80 --force && has "$out" "machine flexflow-k80" || return 1
    run 1 simulate "$TMP/p100.dot" --machine "synthetic:pack:1 core:4 pu:1" --force && one_line &&
        has "$err" "operator 'input'" && has "$err" "the machine has 4" || return 1
    run 0 topo --machine cpu-1socket -o "$TMP/c1.dot" &&
        sed 's/machine="cpu-1socket"/machine="c1"/' fixtures/plans/good_tiny.dot >"$TMP/c1plan.dot" &&
        run 1 simulate "$TMP/c1plan.dot" && has "$err" "not a named machine" && has "$err" "--machine" &&
        run 0 simulate "$TMP/c1plan.dot" --machine "$TMP/c1.dot"
}
t_simulate_compare() { # predicted vs a measured run's trace
    (
        plan_env
        local m=mlp:units=16,layers=1 d=$TMP/cmp
        mkdir -p "$d"
        run 0 compile $m --batch 8 --strategy data -o "$d/p.dot" &&
            run 0 train $m --plan "$d/p.dot" --batch 8 --data synthetic --train-samples 64 \
                --test-samples 8 --epochs 1 --trace "$d/t.json" || return 1
        run 0 simulate "$d/p.dot" --compare "$d/t.json" && quiet &&
            has "$out" "plan $d/p.dot vs trace $d/t.json: model mlp on machine this" &&
            has "$out" "6 training steps measured (2 warm-up steps skipped)" &&
            has "$out" "predicted" && has "$out" "measured" && has "$out" "step " &&
            has "$out" "update " || return 1
        run 0 simulate "$d/p.dot" --compare "$d/t.json" --warmup 0 --ops &&
            has "$out" "8 training steps measured (0 warm-up steps skipped)" &&
            has "$out" "dense1" && has "$out" "operator" || return 1
        run 0 simulate "$d/p.dot" --compare "$d/t.json" --json || return 1
        python3 - "$out" <<'PY' || return 1
import json, sys
text = open(sys.argv[1]).read()
j = json.loads(text)
assert text.count("\n") == 1, "one line"
assert j["predicted_step_seconds"] > 0 and j["measured_step_seconds"] > 0, j
assert abs(j["relative_error"] - (j["predicted_step_seconds"] / j["measured_step_seconds"] - 1)) < 1e-6, j
assert sorted(j["kinds"]) == ["bwd", "fwd", "sync", "update", "xfer"], j
for k, v in j["kinds"].items():
    assert set(v) == {"predicted", "measured", "relative_error"}, v
    assert v["relative_error"] is None if v["measured"] == 0 else abs(v["relative_error"] - (v["predicted"] / v["measured"] - 1)) < 1e-6, (k, v)
assert j["steps"] == 6 and j["warmup"] == 2 and j["batch"] == 8 and j["strategy"] == "data", j
PY
        # bad traces: one message naming the file, exit 1
        : >"$d/empty.json"
        run 1 simulate "$d/p.dot" --compare "$d/empty.json" && one_line &&
            has "$err" "$d/empty.json: the file is empty" || return 1
        head -c 3000 "$d/t.json" >"$d/cut.json"
        run 1 simulate "$d/p.dot" --compare "$d/cut.json" && one_line &&
            has "$err" "$d/cut.json: the trace ends early" || return 1
        local at
        at=$(grep -n -m1 '"dur":' "$d/t.json" | cut -d: -f1)
        sed "${at}s/\"dur\":/\"dur\"/" "$d/t.json" >"$d/bad.json"
        run 1 simulate "$d/p.dot" --compare "$d/bad.json" && one_line &&
            has "$err" "$d/bad.json: malformed trace at line $at, column" || return 1
        echo '{"traceEvents":[]}' >"$d/other.json"
        run 1 simulate "$d/p.dot" --compare "$d/other.json" && one_line &&
            has "$err" "not a trace written by pml train --trace" || return 1
        python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); j["traceEvents"]=[e for e in j["traceEvents"] if e["ph"]!="X" or e["args"]["phase"]!="train"]; json.dump(j,open(sys.argv[2],"w"))' "$d/t.json" "$d/eval.json"
        run 1 simulate "$d/p.dot" --compare "$d/eval.json" && one_line &&
            has "$err" "$d/eval.json: the trace has no training steps" || return 1
        run 1 simulate "$d/p.dot" --compare "$d/none.json" && one_line && has "$err" "$d/none.json" ||
            return 1
        # a trace of another model, batch, plan or machine
        run 0 compile fashion-cnn --batch 8 --strategy data -o "$d/f.dot" &&
            run 1 simulate "$d/f.dot" --compare "$d/t.json" && one_line &&
            has "$err" "$d/t.json: the trace is of model 'mlp', the plan of model 'fashion-cnn'" || return 1
        run 0 compile mlp:units=32,layers=1 --batch 8 --strategy data -o "$d/u32.dot" &&
            run 1 simulate "$d/u32.dot" --compare "$d/t.json" && one_line &&
            has "$err" "the trace is of a model 'mlp' with 12730 parameters, the plan's has 25450" ||
            return 1
        run 0 compile $m --batch 16 --strategy data -o "$d/b16.dot" &&
            run 1 simulate "$d/b16.dot" --compare "$d/t.json" && one_line &&
            has "$err" "the trace ran batch 8, the plan is for batch 16" || return 1
        run 0 compile $m --batch 8 --strategy owt -o "$d/owt.dot" &&
            run 1 simulate "$d/owt.dot" --compare "$d/t.json" && one_line &&
            has "$err" "the trace ran a 'data' plan, the plan is a 'owt' plan" || return 1
        sed '/dense1 \[/s/devices="0,1"/devices="1,0"/' "$d/p.dot" >"$d/moved.dot"
        run 1 simulate "$d/moved.dot" --compare "$d/t.json" && one_line &&
            has "$err" "the trace is of another plan" || return 1
        run 0 compile $m --batch 8 --strategy data --machine cpu-1socket -o "$d/c1.dot" &&
            run 1 simulate "$d/c1.dot" --compare "$d/t.json" && one_line &&
            has "$err" "the trace ran on machine 'this'" || return 1
        run 2 simulate "$d/p.dot" --ops && has "$err" "--ops goes with --compare"
    )
}
t_bench_kernels_usage() { # help and refusals; a tiny run whose rows carry finite numbers
    run 0 bench kernels --help && has "$out" "backward-weights" && has "$out" "sgemm" || return 1
    run 0 bench --help && has "$out" "bench kernels" || return 1
    run 2 bench kernels --batch 0 && has "$err" "--batch '0'" && one_line || return 1
    run 2 bench kernels --seconds -1 && has "$err" "--seconds" && one_line || return 1
    run 2 bench kernels extra && has "$err" "unexpected argument 'extra'" || return 1
    run 0 bench kernels --batch 1 --seconds 0.001 --only "fashion conv2" && has "$out" "conv2" &&
        ! has "$out" "flowers" && ! has "$out" "adam" || return 1
    PML_CONV=fast run 2 --version && has "$err" "PML_CONV='fast' must be blas, dnnl or auto" &&
        one_line || return 1
    PML_CONV=blas run 0 --version || return 1
    # both implementations are timed whatever PML_CONV forces (its workspace was too small)
    PML_CONV=blas run 0 bench kernels --batch 2 --seconds 0.001 && has "$out" "conv2" || return 1
    run 0 bench kernels --batch 1 --seconds 0.001 --json || return 1
    python3 - "$out" <<'PY' || return 1
import json, math, sys
d = json.load(open(sys.argv[1]))
assert d["batch"] == 1 and d["sgemm_gflops"] > 0
names = {(k["layer"], k["kernel"], k["impl"]) for k in d["kernels"]}
assert ("conv2", "backward-data", "blas") in names and ("dense", "adam", "-") in names
assert (("conv2", "forward", "dnnl") in names) == d["dnnl"]
assert ("dw3x3", "backward-data", "direct") in names and ("dw3x3", "forward", "dnnl") not in names
# the loops' compilation picked is one the CPU runs (sanitizer builds have only the baseline)
flags = set(open("/proc/cpuinfo").read().split())
need = {"x86-64-v4": {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma"},
        "x86-64-v3": {"avx2", "fma", "bmi2"}, "baseline": set()}
assert d["isa"] in need and need[d["isa"]] <= flags, d["isa"]
for k in d["kernels"]:
    assert k["ms"] > 0 and math.isfinite(k["gflops"]) and k["gflops"] > 0, k
PY
}

t_conv_choice_kept() { # the convolution kernel a run chose by measuring is kept for later runs
    run 0 bench kernels --batch 1 --seconds 0.001 --json || return 1
    python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["dnnl"] else 1)' "$out" ||
        { echo "  (skip: built without oneDNN: one convolution kernel)" >&2; return 77; }
    local -x XDG_CACHE_HOME=$TMP/conv-cache
    local a="fashion-cnn:filters=8,units=16 --data synthetic --train-samples 96 --test-samples 32 --epochs 1 --plan none --threads 1 --json"
    run 0 train $a || return 1
    local kept
    kept=$(ls "$XDG_CACHE_HOME"/pml/conv/*.txt) && [ "$(wc -l <"$kept")" -ge 4 ] &&
        awk 'NF != 20 || ($20 != "dnnl" && $20 != "blas") { exit 1 }' "$kept" ||
        { echo "  no kept choices: $(cat "$XDG_CACHE_HOME"/pml/conv/*.txt 2>&1 | head -c 300)" >&2; return 1; }
    # later runs take what is kept (all one kernel, as the file now says; a line that does not
    # read is skipped): their losses are those of that kernel forced
    local impl want
    for impl in blas dnnl; do
        PML_CONV=$impl run 0 train $a || return 1
        want=$(losses "$out")
        { echo "not a line"; awk -v k=$impl '{ $20 = k; print }' "$kept"; } >"$kept.new" &&
            mv "$kept.new" "$kept" || return 1
        run 0 train $a || return 1
        [ "$(losses "$out")" = "$want" ] ||
            { echo "  kept $impl: $(losses "$out"), $impl forced: $want" >&2; return 1; }
    done
}
# ---- checkpoints and resume
last_losses() { # last_losses FILE: the last epoch's loss and the test loss, in full
    python3 -c 'import json, sys; j = json.load(open(sys.argv[1]))
print(repr(j["epochs"][-1]["loss"]), repr(j["test_loss"]))' "$1"
}
t_checkpoint_resume() { # stopped at a step, resumed: the losses of a run never stopped, exactly
    # a plan given (a choice made by trial could differ between runs, and round differently)
    local d=$TMP/ck a="mlp:units=32,dropout=0.1 --train-samples 800 --test-samples 200 --epochs 3 --plan data --json" full
    run 0 train $a || return 1
    full=$(last_losses "$out")
    run 0 train $a --max-steps 37 --checkpoint "$d" --checkpoint-every 10 --keep 2 || return 1
    python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); assert j["checkpoints"] == 4, j' "$out" || return 1
    [ "$(cd "$d" && echo step-*)" = "step-000000000030.ckpt step-000000000037.ckpt" ] ||
        { echo "  kept: $(ls "$d")" >&2; return 1; }
    run 0 train $a --resume "$d" --checkpoint "$d" || return 1 # the folder: its newest
    [ "$(last_losses "$out")" = "$full" ] || { echo "  resumed $(last_losses "$out"), full $full" >&2; return 1; }
    python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); assert j["resumed_step"] == 37, j' "$out" || return 1
    run 0 train $a --resume "$d/step-000000000030.ckpt" || return 1 # a file
    [ "$(last_losses "$out")" = "$full" ] || return 1
    # another plan: said, and the losses agree to 1e-5 (they round differently)
    run 0 train ${a/--plan data/--plan none --threads 1} --resume "$d/step-000000000030.ckpt" &&
        has "$err" "this run's differs" || return 1
    python3 -c 'import sys; a = [float(x) for x in sys.argv[1].split()]; b = [float(x) for x in sys.argv[2].split()]
sys.exit(0 if all(abs(x - y) <= 1e-5 * abs(y) for x, y in zip(a, b)) else 1)' "$(last_losses "$out")" "$full" ||
        { echo "  another plan: $(last_losses "$out"), $full" >&2; return 1; }
    # the epoch line of the epoch it went on in counts the steps before
    run 0 train ${a% --json} --resume "$d/step-000000000030.ckpt" && has "$out" "(resumed after step 5)" &&
        has "$out" "Resume: from $d/step-000000000030.ckpt"
}
t_checkpoint_signal() { # SIGTERM, then SIGINT: a last checkpoint at the step boundary; resumed exactly
    local d=$TMP/cks a="mlp:units=64 --train-samples 4000 --test-samples 200 --epochs 25 --plan none --threads 1 --json"
    local full sig
    run 0 train $a || return 1
    full=$(last_losses "$out")
    for sig in TERM INT; do
        rm -rf "$d"
        python3 - "$PML" "$d" "$sig" $a <<'PY' || return 1
import os, signal, subprocess, sys, time
pml, d, sig, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
p = subprocess.Popen([pml, "train"] + args + ["--checkpoint", d, "--checkpoint-every", "1000000"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
# with --json the Keras-like lines go to stderr: stop it in its second epoch
for line in p.stderr:
    if line.startswith("Epoch 1/"):
        break
time.sleep(0.05)
p.send_signal(getattr(signal, "SIG" + sig))
out, err = p.communicate(timeout=60)
assert p.returncode != 0, "exit 0 after a signal"
files = [f for f in os.listdir(d) if f.endswith(".ckpt")]
assert len(files) == 1 and files[0] != "step-%012d.ckpt" % (25 * 125), files  # where it stopped
PY
        run 0 train $a --resume "$d" || return 1
        [ "$(last_losses "$out")" = "$full" ] ||
            { echo "  SIG$sig: resumed $(last_losses "$out"), full $full" >&2; return 1; }
    done
}
t_checkpoint_kill() { # SIGKILL at 20 random moments: the newest checkpoint left always resumes exactly
    local d=$TMP/ckk a="mlp:units=512,layers=2,dropout=0.1 --train-samples 2000 --test-samples 200 --epochs 4 --plan none --threads 1 --json"
    local full i mid=0 r
    run 0 train $a || return 1
    full=$(last_losses "$out")
    for i in $(seq 1 20); do # 20 moments, as the issue asks
        rm -rf "$d"
        # killed a random moment after its first checkpoint (a loaded machine starts slowly)
        r=$(python3 - "$PML" "$d" $a <<'PY'
import os, random, signal, subprocess, sys, time
pml, d, args = sys.argv[1], sys.argv[2], sys.argv[3:]
p = subprocess.Popen([pml, "train"] + args + ["--checkpoint", d, "--checkpoint-every", "3"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.time() + 60
while p.poll() is None and time.time() < deadline and not (
        os.path.isdir(d) and any(f.endswith(".ckpt") for f in os.listdir(d))):
    time.sleep(0.005)
time.sleep(random.uniform(0, 0.6))
ended = p.poll() is not None
p.kill()
p.wait()
print("ended" if ended else "killed")
PY
) || return 1
        [ "$r" = killed ] && mid=$((mid + 1))
        run 0 train $a --resume "$d" || return 1
        [ "$(last_losses "$out")" = "$full" ] ||
            { echo "  kill $i: resumed $(last_losses "$out"), full $full" >&2; return 1; }
    done
    [ $mid -gt 0 ] || { echo "  (no kill came mid-run: nothing checked)" >&2; return 77; }
}
t_checkpoint_errors() { # bad checkpoints and flags: one message naming the file, no training
    local d=$TMP/cke a="mlp:units=16 --train-samples 200 --test-samples 50 --epochs 1"
    run 0 train $a --checkpoint "$d" || return 1
    local f
    f=$(ls "$d"/step-*.ckpt)
    run 2 train $a --keep 2 && has "$err" "--keep goes with --checkpoint DIR" && one_line || return 1
    run 2 train $a --checkpoint-every 0 && has "$err" "--checkpoint-every" || return 1
    mkdir -p "$TMP/empty"
    run 1 train $a --resume "$TMP/empty" && has "$err" "has no checkpoint" && one_line || return 1
    run 1 train $a --resume "$TMP/nothere.ckpt" && has "$err" "nothere.ckpt" && one_line || return 1
    head -c 300 "$f" >"$TMP/cut.ckpt"
    run 1 train $a --resume "$TMP/cut.ckpt" && has "$err" "cut.ckpt" && has "$err" "cut short" || return 1
    python3 - "$f" "$TMP/bad.ckpt" <<'PY' || return 1
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[-5] ^= 0x40  # a flipped bit in the data
open(sys.argv[2], "wb").write(b)
PY
    run 1 train $a --resume "$TMP/bad.ckpt" && has "$err" "checksum" && one_line || return 1
    # a byte flipped anywhere, header or data: refused, naming the file
    local at size
    size=$(stat -c %s "$f")
    for at in 3 20 40 60 90 120 160 200 250 300 $((size / 2)) $((size - 1)); do
        python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[int(sys.argv[3])] ^= 0x10
open(sys.argv[2], "wb").write(b)' "$f" "$TMP/flip.ckpt" $at || return 1
        run 1 train $a --resume "$TMP/flip.ckpt" && has "$err" "flip.ckpt" && one_line ||
            { echo "  byte $at flipped" >&2; return 1; }
    done
    sed '1s/pml checkpoint 2/pml checkpoint 9/' "$f" >"$TMP/v9.ckpt"
    run 1 train $a --resume "$TMP/v9.ckpt" && has "$err" "a checkpoint format this pml does not read" || return 1
    sed '1s/pml checkpoint 2/pml checkpoint 1/' "$f" >"$TMP/v1.ckpt"
    run 1 train $a --resume "$TMP/v1.ckpt" && has "$err" "version 1, of an older pml" && one_line || return 1
    echo "hello" >"$TMP/not.ckpt"
    run 1 train $a --resume "$TMP/not.ckpt" && has "$err" "not a pml checkpoint" || return 1
    run 1 train mlp:units=17 --train-samples 200 --test-samples 50 --epochs 1 --resume "$f" &&
        has "$err" "is of model" && one_line || return 1
    run 1 train $a --seed 5 --resume "$f" && has "$err" "--seed 1 --batch 32" || return 1
    run 1 train $a --optimizer sgd --resume "$f" && has "$err" "--optimizer adam" || return 1
    : >"$TMP/afile"
    run 1 train $a --checkpoint "$TMP/afile" && has "$err" "afile" && ! grep -q "^Epoch" "$out" ||
        return 1
    # writes that fail (a file size limit, as a full disk): said, training goes on, the older
    # checkpoint stays whole and resumes
    cp "$f" "$TMP/before.ckpt"
    (trap '' XFSZ; ulimit -f 60; exec "$PML" train mlp:units=16 --train-samples 400 \
        --test-samples 50 --epochs 2 --resume "$d" --checkpoint "$d" --checkpoint-every 5) \
        >"$out" 2>"$err"
    [ $? = 1 ] && has "$err" "could not be written" && has "$err" "training goes on" &&
        has "$out" "Epoch 2/2" && has "$err" "the last checkpoint" && cmp -s "$f" "$TMP/before.ckpt" &&
        [ "$(ls "$d")" = "$(basename "$f")" ] || { echo "  failing writes: $(head -c 300 "$err")" >&2; return 1; }
    run 0 train $a --resume "$d"
}
ONNX_DATA=/usr/include/onnx/backend/test/data
onnx_ok() { # pml is built with ONNX (protobuf-c); else the case skips, as t_onnx_absent checks
    ldd "$PML" 2>/dev/null | grep -q libprotobuf-c || {
        echo "  skip: pml built without ONNX (Debian protobuf-c-compiler, libprotobuf-c-dev, libonnx-dev)"
        return 1
    }
}
t_onnx_absent() { # built without ONNX: a .onnx model is refused with what to install, no output
    ldd "$PML" 2>/dev/null | grep -q libprotobuf-c && { echo "  skip: pml is built with ONNX"; return 77; }
    echo "not a model" >"$TMP/x.onnx"
    run 3 infer "$TMP/x.onnx" --input "$TMP/x.onnx" -o "$TMP/nox" && has "$err" "built without ONNX" &&
        has "$err" "libonnx-dev" && one_line && [ ! -e "$TMP/nox" ] || return 1
    run 1 export mlp -o "$TMP/x2.onnx" && has "$err" "built without ONNX" && [ ! -e "$TMP/x2.onnx" ] ||
        return 1
    run 1 train "$TMP/x.onnx" --data synthetic && has "$err" "built without ONNX" || return 1
}
t_onnx_infer() { # an ONNX test case through pml infer: checked, written, read back
    onnx_ok || return 77
    [ -d $ONNX_DATA/node ] || { echo "  skip: no ONNX test data (Debian libonnx-testdata)"; return 77; }
    local c=$ONNX_DATA/node/test_conv_with_strides_padding
    run 0 infer $c/model.onnx --input $c/test_data_set_0 --check && has "$out" "12 values agree" ||
        return 1
    run 0 infer $c/model.onnx --input $c/test_data_set_0 -o "$TMP/oi" --format npy || return 1
    [ -s "$TMP/oi/output_0.npy" ] || return 1
    run 0 infer $c/model.onnx --input $c/test_data_set_0/input_0.pb --input $c/test_data_set_0/input_1.pb \
        --check="$TMP/oi" --rtol 0 --atol 0 && has "$out" "12 values agree" || return 1
    # a different expected output: said, exit 1
    local b=$ONNX_DATA/node/test_conv_with_strides_no_padding/test_data_set_0
    run 1 infer $c/model.onnx --input $c/test_data_set_0 --check="$b" && has "$err" "output has" || return 1
    # a softmax output and a batchnorm in inference form
    c=$ONNX_DATA/node/test_softmax_example
    run 0 infer $c/model.onnx --input $c/test_data_set_0 --check || return 1
    c=$ONNX_DATA/node/test_batchnorm_epsilon
    run 0 infer $c/model.onnx --input $c/test_data_set_0 --check || return 1
    # a Reshape whose shape is an int64 input: folded from the file given, the output reshaped
    c=$ONNX_DATA/node/test_reshape_reordered_all_dims
    run 0 infer $c/model.onnx --input $c/test_data_set_0 --check && has "$out" "values agree" || return 1
    run 0 infer $c/model.onnx --input $c/test_data_set_0/input_0.pb --input $c/test_data_set_0/input_1.pb \
        -o "$TMP/reshaped" && [ -s "$TMP/reshaped/output_0.pb" ] || return 1
    # several outputs: a MaxPool's Indices (int64), a Dropout's mask (bool), each checked and written
    c=$ONNX_DATA/node/test_maxpool_with_argmax_2d_precomputed_strides
    run 0 infer $c/model.onnx --input $c/test_data_set_0 --check && has "$out" "output 'y': 4 values agree" &&
        has "$out" "output 'z': 4 values agree" || return 1
    run 0 infer $c/model.onnx --input $c/test_data_set_0 -o "$TMP/argmax" --format npy &&
        [ -s "$TMP/argmax/output_0.npy" ] && head -c 64 "$TMP/argmax/output_1.npy" | grep -q "'<i8'" || return 1
    run 0 infer $c/model.onnx --input $c/test_data_set_0 --check="$TMP/argmax" --rtol 0 --atol 0 || return 1
    c=$ONNX_DATA/node/test_dropout_default_mask
    run 0 infer $c/model.onnx --input $c/test_data_set_0 -o "$TMP/mask" && [ -s "$TMP/mask/output_1.pb" ] ||
        return 1
    if /usr/bin/python3 -c "import onnx" 2>/dev/null; then
        /usr/bin/python3 - "$TMP/mask/output_1.pb" "$c/test_data_set_0/output_1.pb" <<'PY' || return 1
import sys
from onnx import TensorProto, numpy_helper
def load(p):
    t = TensorProto()
    t.ParseFromString(open(p, "rb").read())
    return numpy_helper.to_array(t)
a, e = load(sys.argv[1]), load(sys.argv[2])
assert a.dtype == e.dtype == bool and (a == e).all(), (a.dtype, e.dtype)
PY
    fi
    rm -f "$TMP/mask/output_1.pb"
    run 1 infer $c/model.onnx --input $c/test_data_set_0 --check="$TMP/mask" &&
        has "$err" "no output_1.pb or output_1.npy" || return 1
    # an output that cannot be written: one message, and none of the outputs left behind
    rm -rf "$TMP/half" && mkdir -p "$TMP/half/output_1.pb" && touch "$TMP/half/output_1.pb/x"
    run 1 infer $c/model.onnx --input $c/test_data_set_0 -o "$TMP/half" && has "$err" "output_1.pb" &&
        one_line && [ ! -e "$TMP/half/output_0.pb" ] || return 1
}

t_onnx_errors() { # bad ONNX models and tensors: one message naming the file, no output
    onnx_ok || return 77
    [ -d $ONNX_DATA/node ] || { echo "  skip: no ONNX test data (Debian libonnx-testdata)"; return 77; }
    local c=$ONNX_DATA/node/test_conv_with_strides_padding
    run 3 infer $ONNX_DATA/node/test_cos/model.onnx --input $ONNX_DATA/node/test_cos/test_data_set_0 &&
        has "$err" "(Cos): pml does not support this operator" && one_line || return 1
    # a training-mode BatchNormalization: the batch's statistics (batch_stats in DOT, read back),
    # and the running ones after the batch as outputs
    local b=$ONNX_DATA/node/test_batchnorm_epsilon_training_mode
    run 0 infer $b/model.onnx --input $b/test_data_set_0 --check &&
        has "$out" "output 'output_var': 3 values agree" || return 1
    run 0 export $b/model.onnx -o "$TMP/bnt.dot" && grep -q "batch_stats=1" "$TMP/bnt.dot" &&
        run 0 export "$TMP/bnt.dot" -o "$TMP/bnt2.dot" && grep -q "batch_stats=1" "$TMP/bnt2.dot" ||
        return 1
    # written back as ONNX: training mode, its three outputs (ONNX's checker wants them)
    run 0 export "$TMP/bnt.dot" -o "$TMP/bnt.onnx" || return 1
    if /usr/bin/python3 -c "import onnx.checker" 2>/dev/null; then
        /usr/bin/python3 -c "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)" \
            "$TMP/bnt.onnx" || return 1
    fi
    run 0 export "$TMP/bnt.onnx" -o "$TMP/bnt5.dot" && grep -q "batch_stats=1" "$TMP/bnt5.dot" ||
        return 1
    sed 's/batch_stats=1/batch_stats=2/' "$TMP/bnt.dot" >"$TMP/bnt3.dot"
    run 1 export "$TMP/bnt3.dot" -o "$TMP/bnt4.dot" && has "$err" "batch_stats" && one_line &&
        [ ! -e "$TMP/bnt4.dot" ] || return 1
    # a training-mode Dropout: seeded, ONNX's reference mask (and the mask as an output); at
    # ratio 0 nothing is dropped; a bool input that nothing gives is refused
    local d=$ONNX_DATA/node/test_training_dropout
    run 0 infer ${d}_mask/model.onnx --input ${d}_mask/test_data_set_0 -o "$TMP/drop" --check &&
        has "$out" "output 'y': 60 values agree" && has "$out" "output 'z': 60 values agree" &&
        [ -s "$TMP/drop/output_1.pb" ] || return 1
    run 0 infer ${d}_zero_ratio_mask/model.onnx --input ${d}_zero_ratio_mask/test_data_set_0 \
        --check && has "$out" "output 'z': 60 values agree" || return 1
    run 1 export ${d}_zero_ratio/model.onnx -o "$TMP/drop.dot" &&
        has "$err" "graph input 't' is of type bool" && has "$err" "or a scalar given" && one_line &&
        [ ! -e "$TMP/drop.dot" ] || return 1
    run 1 compile $ONNX_DATA/node/test_convtranspose/model.onnx --batch 8 -o "$TMP/p3.dot" &&
        has "$err" "(ConvTranspose): pml does not support this operator" && one_line &&
        [ ! -e "$TMP/p3.dot" ] || return 1
    # a 3-D model (rank 5) plans
    run 0 compile $ONNX_DATA/node/test_maxpool_3d_default/model.onnx --batch 8 -o "$TMP/p3.dot" &&
        [ -s "$TMP/p3.dot" ] && grep -q "depth=32" "$TMP/p3.dot" || return 1
    head -c 100 $c/model.onnx >"$TMP/cut.onnx"
    run 1 infer "$TMP/cut.onnx" --input $c/test_data_set_0 -o "$TMP/no" &&
        has "$err" "cut.onnx: not an ONNX model" && one_line && [ ! -e "$TMP/no" ] || return 1
    run 1 export "$TMP/cut.onnx" -o "$TMP/cut.dot" && has "$err" "cut.onnx" && [ ! -e "$TMP/cut.dot" ] ||
        return 1
    run 1 infer "$TMP/nothere.onnx" --input $c/test_data_set_0 && has "$err" "nothere.onnx" || return 1
    head -c 20 $c/test_data_set_0/input_0.pb >"$TMP/cut.pb"
    run 1 infer $c/model.onnx --input "$TMP/cut.pb" --input $c/test_data_set_0/input_1.pb &&
        has "$err" "cut.pb" && one_line || return 1
    run 1 infer $c/model.onnx --input $c/test_data_set_0/input_1.pb --input $c/test_data_set_0/input_1.pb &&
        has "$err" "input 'x'" && one_line || return 1
    run 1 infer $c/model.onnx --input $c/test_data_set_0/input_0.pb && has "$err" "2 inputs, 1 --input" ||
        return 1
    run 2 infer $c/model.onnx && has "$err" "missing --input" || return 1
    run 2 infer $c/model.onnx --input $c/test_data_set_0 --format png && has "$err" "pb or npy" || return 1
}

t_onnx_model() { # an ONNX model is a MODEL: exported, drawn, planned, trained from its weights
    onnx_ok || return 77
    [ -d $ONNX_DATA/node ] || { echo "  skip: no ONNX test data (Debian libonnx-testdata)"; return 77; }
    local c=$ONNX_DATA/pytorch-converted/test_Conv2d/model.onnx
    run 0 export $c -o "$TMP/c.dot" && grep -q 'op=conv2d, out=4, kernel="3x2"' "$TMP/c.dot" || return 1
    run 0 export "$TMP/c.dot" -o "$TMP/c2.dot" && cmp -s "$TMP/c.dot" "$TMP/c2.dot" || return 1
    run 0 viz $c -o "$TMP/c.svg" && grep -q "<svg" "$TMP/c.svg" || return 1
    run 0 compile $c --machine cpu-2socket --batch 64 --iterations 200 -o "$TMP/cp.dot" || return 1
    run 0 simulate "$TMP/cp.dot" --machine cpu-2socket || return 1
    # trained from its initializers: the first step's loss is the ONNX weights' loss
    local a="--data synthetic --train-samples 64 --test-samples 64 --epochs 1 --threads 1 --plan none"
    run 0 train $c $a --max-steps 1 --save "$TMP/c.pml" --json || return 1
    run 0 train "$TMP/c.dot" $a --max-steps 1 --json || return 1
    cp "$out" "$TMP/fromdot.json"
    run 0 train $c $a --max-steps 1 --json || return 1
    python3 - "$TMP/fromdot.json" "$out" <<'PY' || return 1
import json, sys
d, o = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
# the same graph from pml's own initialisation and from the ONNX weights: different losses
assert d["epochs"][0]["loss"] != o["epochs"][0]["loss"], (d, o)
PY
}

t_onnx_export() { # a trained model written as ONNX: read back by pml (and ONNX's checker), same outputs
    onnx_ok || return 77
    local a="mlp:units=16 --train-samples 256 --test-samples 64 --epochs 1 --threads 1 --plan none"
    run 0 train $a --save "$TMP/e.pml" || return 1
    run 0 export "$TMP/e.pml" -o "$TMP/e.onnx" || return 1
    if /usr/bin/python3 -c "import onnx.checker" 2>/dev/null; then
        /usr/bin/python3 -c "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)" \
            "$TMP/e.onnx" || return 1
    else
        echo "  (no python3-onnx: ONNX's checker not run; libonnx-testdata alone installs an onnx folder without it)"
    fi
    python3 - "$TMP/x.npy" <<'PY' || return 1
import struct, sys
h = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 1, 28, 28), }"
h += " " * (63 - (10 + len(h)) % 64) + "\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode())
    f.write(struct.pack("<%df" % (3 * 784), *[((i * 37) % 101) / 101.0 for i in range(3 * 784)]))
PY
    run 0 infer "$TMP/e.pml" --input "$TMP/x.npy" -o "$TMP/ep" || return 1
    run 0 infer "$TMP/e.onnx" --input "$TMP/x.npy" --check="$TMP/ep" --rtol 0 --atol 0 &&
        has "$out" "30 values agree" || return 1
    run 0 export "$TMP/e.onnx" -o "$TMP/e.dot" && run 0 export "$TMP/e.pml" -o "$TMP/e2.dot" || return 1
    diff <(grep -v "^digraph\|^//" "$TMP/e.dot") <(grep -v "^digraph\|^//" "$TMP/e2.dot") >&2 || return 1
    run 2 export mlp -o "$TMP/e.png" && has "$err" ".onnx" || return 1
}

t_onnx_torchvision() { # torchvision's models exported by PyTorch: pml's count and outputs agree
    onnx_ok || return 77
    local py=/usr/bin/python3
    $py -c "import torch, torchvision, numpy" 2>/dev/null ||
        { echo "  skip: no PyTorch (Debian python3-torch, python3-torchvision, python3-numpy)"; return 77; }
    local n
    # alexnet and vgg16 at 224 (their adaptive pooling then keeps the size: one kernel each);
    # the mobile ones (SiLU, squeeze-and-excitation, HardSwish, ReLU6, ReduceMean) and densenet121
    # (a Concat of 25) with batchnorm statistics of a batch, so that their outputs are not tiny
    for n in alexnet:224:13 vgg16:224:15 resnet50:64:13 inception_v3:75:17 efficientnet_b0:64:13 \
        mobilenet_v3_small:64:14 mobilenet_v2:64:13 mnasnet0_5:64:13 densenet121:64:13; do # NAME:SIZE:OPSET
        local name=${n%%:*} size=${n#*:}
        local opset=${size#*:}
        size=${size%%:*}
        $py - "$name" "$TMP/$name" "$size" "$opset" <<'PY' >"$TMP/$name.count" 2>"$TMP/$name.log" || { cat "$TMP/$name.log" >&2; return 1; }
import os, sys, numpy as np, torch, torchvision
name, out, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.manual_seed(0)
kw = {"aux_logits": False, "init_weights": False} if name == "inception_v3" else {}
m = getattr(torchvision.models, name)(weights=None, **kw).eval()
with torch.no_grad():  # batchnorm statistics that are not 0 and 1
    if name in ("alexnet", "vgg16", "resnet50", "inception_v3"):
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1); mod.running_var.uniform_(0.5, 1.5)
    else:  # a batch's: these decay to nothing through their layers otherwise
        for mod in m.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm): mod.momentum = 1.0
        m.train(); m(torch.randn(8, 3, size, size)); m.eval()
x = torch.randn(2, 3, size, size)
torch.onnx.export(m, x, out + ".onnx", opset_version=int(sys.argv[4]), do_constant_folding=False,
                  training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"],
                  output_names=["logits"], dynamic_axes={"input": {0: "N"}})
with torch.no_grad():
    y = m(x).numpy()
os.makedirs(out, exist_ok=True)
np.save(out + "/input_0.npy", x.numpy()); np.save(out + "/output_0.npy", y)
print(sum(p.numel() for p in m.parameters()), 1e-4 * float(np.abs(y).max()))
PY
        local want atol
        atol=$(cut -d' ' -f2 "$TMP/$name.count")
        want=$(python3 -c 'import sys; print(f"{int(open(sys.argv[1]).read().split()[0]):,}")' "$TMP/$name.count")
        run 0 export "$TMP/$name.onnx" -o "$TMP/$name.dot" && grep -q "$want parameters" "$TMP/$name.dot" ||
            { echo "  $name: PyTorch counts $want parameters" >&2; head -1 "$TMP/$name.dot" >&2; return 1; }
        # to 1e-4 of the output's scale: float sums in another order, over 50 to 95 layers
        run 0 infer "$TMP/$name.onnx" --input "$TMP/$name" --check --rtol 1e-4 --atol "$atol" &&
            has "$out" "2000 values agree" || return 1
    done
    # the same graph as the zoo's: the same predicted step time
    run 0 compile "$TMP/resnet50.onnx" --machine flexflow-k80 --batch 64 --strategy data -o "$TMP/r1.dot" &&
        grep "^  data" "$out" >"$TMP/r1.txt" || return 1
    run 0 compile resnet50:size=64 --machine flexflow-k80 --batch 64 --strategy data -o "$TMP/r2.dot" &&
        grep "^  data" "$out" | cmp -s - "$TMP/r1.txt" ||
        { echo "  zoo: $(grep '^  data' "$out"), ONNX: $(cat "$TMP/r1.txt")" >&2; return 1; }
}

t_save_evaluate_predict() { # a saved model: evaluated and predicting as the run that made it
    local m=$TMP/m.pml a="mlp:units=32 --train-samples 1000 --test-samples 300 --epochs 2 --plan none --threads 1"
    run 0 train $a --save "$m" --json || return 1
    cp "$out" "$TMP/trained.json"
    run 0 evaluate "$m" --test-samples 300 --threads 1 --json || return 1
    python3 - "$TMP/trained.json" "$out" <<'PY' || return 1
import json, sys
t, e = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert e["test_loss"] == t["test_loss"] and e["test_accuracy"] == t["test_accuracy"], (t, e)
assert e["samples"] == 300
PY
    run 0 predict "$m" --test-samples 300 --threads 1 --json || return 1
    python3 - "$TMP/trained.json" "$out" <<'PY' || return 1
import json, sys
t = json.load(open(sys.argv[1]))
rows = [json.loads(l) for l in open(sys.argv[2])]
assert [r["index"] for r in rows] == list(range(300)), len(rows)
assert all(0.1 <= r["probability"] <= 1 and 0 <= r["class"] < 10 for r in rows)
acc = sum(r["class"] == r["label"] for r in rows) / 300
assert abs(acc - t["test_accuracy"]) < 1e-6, (acc, t["test_accuracy"])
PY
    run 0 predict "$m" --test-samples 3 && [ "$(wc -l <"$out")" = 3 ] || return 1
    # a saved model of format 1 (linear weights inputs x outputs) is read, transposed
    python3 - "$m" "$TMP/v1.pml" <<'PY' || return 1
import sys, array
def crc32c(b):
    t = [0] * 256
    for i in range(256):
        c = i
        for _ in range(8): c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        t[i] = c
    c = 0xFFFFFFFF
    for x in b: c = t[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF
raw = open(sys.argv[1], "rb").read()
assert raw.startswith(b"pml model 2\n")
i = raw.index(b"\ndot ") + 1
j = raw.index(b"\n", i)
dot_end = j + 1 + int(raw[i + 4:j])
lines, pos = [], dot_end
while True:
    e = raw.index(b"\n", pos)
    lines.append(raw[pos:e].decode())
    pos = e + 1
    if lines[-1] == "data": break
_, _, n, crc = lines[0].split()
p = array.array("f", raw[pos:pos + 4 * int(n)])  # little-endian, as this machine
assert crc32c(p.tobytes()) == int(crc, 16)
al = lambda k: (k + 15) // 16 * 16
o1 = 0; b1 = al(32 * 784); o2 = b1 + al(32); b2 = o2 + al(320)
assert al(b2 + 10) == int(n), n
def t(o, rows, cols):  # (rows, cols) -> (cols, rows)
    w = p[o:o + rows * cols]
    p[o:o + rows * cols] = array.array("f", [w[r * cols + c] for c in range(cols) for r in range(rows)])
t(o1, 32, 784)
t(o2, 10, 32)
head = raw[:dot_end].replace(b"pml model 2\n", b"pml model 1\n", 1)
tail = ("tensor params %s %08x\n" % (n, crc32c(p.tobytes()))).encode() + \
       ("\n".join(lines[1:]) + "\n").encode()
open(sys.argv[2], "wb").write(head + tail + p.tobytes() + raw[pos + 4 * int(n):])
PY
    run 0 evaluate "$TMP/v1.pml" --test-samples 300 --threads 1 --json || return 1
    python3 -c 'import json, sys; t, e = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert e["test_loss"] == t["test_loss"] and e["test_accuracy"] == t["test_accuracy"], (t, e)' \
        "$TMP/trained.json" "$out" || return 1
    # every MODEL argument reads a saved model's model
    run 0 export "$m" -o "$TMP/m.dot" && run 0 export mlp:units=32 -o "$TMP/z.dot" &&
        cmp -s "$TMP/m.dot" "$TMP/z.dot" || return 1
    # bad files: one message naming the file
    run 1 evaluate "$TMP/none.pml" && has "$err" "none.pml" && one_line || return 1
    head -c 700 "$m" >"$TMP/cut.pml"
    run 1 evaluate "$TMP/cut.pml" && has "$err" "cut.pml" && has "$err" "cut short" && one_line || return 1
    python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-3] ^= 1
open(sys.argv[2], "wb").write(b)' "$m" "$TMP/flip.pml" || return 1
    run 1 predict "$TMP/flip.pml" && has "$err" "checksum" && one_line || return 1
    # a model text changed into another model's: refused by its hash, not read as that model
    python3 -c 'import sys; b = open(sys.argv[1], "rb").read(); assert b.count(b"out=32") > 0
open(sys.argv[2], "wb").write(b.replace(b"out=32", b"out=33", 1))' "$m" "$TMP/other.pml" || return 1
    run 1 evaluate "$TMP/other.pml" && has "$err" "other.pml" && has "$err" "text is damaged" && one_line ||
        return 1
    run 0 train mlp:units=16 --train-samples 100 --test-samples 20 --epochs 1 --checkpoint "$TMP/evck" || return 1
    run 1 evaluate "$(ls "$TMP"/evck/step-*.ckpt)" && has "$err" "a checkpoint, not a saved model" || return 1
    run 2 evaluate && has "$err" "missing MODEL.pml" || return 1
    run 0 evaluate --help && has "$out" "pml train --save" && run 0 predict --help &&
        has "$out" "INDEX CLASS PROBABILITY LABEL" && run 0 --help && has "$out" "evaluate FILE" || return 1
    run 2 predict "$m" --batch 0 && has "$err" "--batch" || return 1
    run 1 train $a --save "$TMP/no/such/m.pml" && has "$err" "cannot write in" && ! grep -q "^Epoch" "$out" &&
        [ ! -e "$TMP/no" ] || return 1
    mkdir -p "$TMP/adir.pml"
    run 1 train $a --save "$TMP/adir.pml" && has "$err" "a folder, not a file" && ! grep -q "^Epoch" "$out"
}
t_bench_checkpoint() { # the benchmark is not a test: it runs, says what it measured, refuses bad flags
    run 0 bench checkpoint mlp --rounds 1 --dir "$TMP" --json || return 1
    python3 -c 'import json, sys; j = json.load(open(sys.argv[1]))
assert j["bytes"] == 4 * (3 * 101776) and j["write_seconds"] > 0 and j["read_seconds"] > 0, j' "$out" || return 1
    [ -z "$(ls "$TMP"/step-* "$TMP"/.bench-raw-* 2>/dev/null)" ] || return 1 # nothing left behind
    run 2 bench checkpoint && has "$err" "missing MODEL" || return 1
    run 2 bench checkpoint mlp --rounds 0 && has "$err" "--rounds" || return 1
    run 1 bench checkpoint mlp --dir "$TMP/no/such" && has "$err" "no/such"
}
t_bench_accuracy_usage() { # the benchmark itself is not a test: its help and refusals only
    run 0 bench accuracy --help && has "$out" "Spearman" && has "$out" "--steps" &&
        has "$out" "--rounds" && has "$out" "--only" && has "$out" "--json" || return 1
    run 0 bench --help && has "$out" "bench accuracy" || return 1
    run 2 bench accuracy --steps 0 && has "$err" "--steps" || return 1
    run 2 bench accuracy extra && has "$err" "unexpected argument 'extra'" || return 1
    run 1 bench accuracy --only no-such-plan --patience 0 && one_line &&
        has "$err" "no plan's name contains 'no-such-plan'"
}
t_simulate_errors() {
    run 2 simulate && has "$err" "missing PLAN" || return 1
    run 2 simulate a.dot --frobnicate && has "$err" "unknown option" || return 1
    run 1 simulate "$TMP/none.dot" && has "$err" "$TMP/none.dot" && one_line || return 1
    run 1 simulate fixtures/models/good_tiny.dot && has "$err" "kind=model: this is not a plan file" &&
        one_line || return 1
    run 1 simulate fixtures/plans/good_too_big.dot && one_line &&
        has "$err" "pml simulate: fixtures/plans/good_too_big.dot: " && has "$err" "core0" || return 1
    local f
    for f in fixtures/plans/*.dot; do # every bad plan: exit 1, one line naming the file
        case $f in */good_* | */other_model_* | */other_batch.dot) continue ;; esac
        run 1 simulate "$f" && has "$err" "pml simulate: $f: " && one_line || return 1
    done
    run 1 simulate fixtures/plans/duplicate_devices.dot && has "$err" "operator 'conv1'"
}
t_viz_plan() {
    run 0 compile resnet50:size=32 --machine flexflow-p100 --batch 64 --strategy owt -o "$TMP/o.dot" &&
        run 0 viz "$TMP/o.dot" -o "$TMP/o.svg" && quiet || return 1
    python3 - "$TMP/o.svg" <<'PY' || return 1
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
texts = [t.text or "" for t in root.iter(ns + "text")]
assert any(t.startswith("plan of resnet50 for flexflow-p100") for t in texts), texts[:3]
assert "devices (16 of 16 used)" in texts, texts[:8]
assert "0 node0/gpu0" in texts and "15 node3/gpu3" in texts
assert "n=16 on 0-15" in texts and "c=10 on 0-9" in texts, [t for t in texts if " on " in t][:5]
PY
    run 0 viz "$TMP/o.dot" --collapse -o "$TMP/o.png" || return 1
    run 0 viz fixtures/plans/good_tiny.dot -o "$TMP/t.svg" && grep -q ">n=2 h=2 on 3,2,1,0<" "$TMP/t.svg" &&
        grep -q "4 core4" "$TMP/t.svg" || return 1
    run 1 viz fixtures/plans/too_few_devices.dot -o "$TMP/bad.svg" && one_line &&
        has "$err" "operator 'conv1'" && [ ! -e "$TMP/bad.svg" ]
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
case_ image_folder t_image_folder
case_ image_folder_bad t_image_folder_bad
case_ image_folder_overlap_bad t_image_folder_overlap_bad
case_ image_folder_cache t_image_folder_cache
case_ sigint t_sigint
case_ plot_png t_plot_png
case_ plot_svg t_plot_svg
case_ plot_bad_name t_plot_bad_name
case_ plot_cannot_write t_plot_cannot_write
case_ plot_sigint t_plot_sigint

case_ export_help t_export_help
case_ export_zoo t_export_zoo
case_ export_train t_export_train
case_ export_stdout t_export_stdout
case_ export_errors t_export_errors
case_ export_keeps_old t_export_keeps_old
case_ bad_model_files t_bad_model_files
case_ good_model_file t_good_model_file
case_ viz_help t_viz_help
case_ viz_svg t_viz_svg
case_ viz_dot_file t_viz_dot_file
case_ viz_png t_viz_png
case_ viz_pdf t_viz_pdf
case_ viz_dot t_viz_dot
case_ viz_collapse t_viz_collapse
case_ viz_errors t_viz_errors
case_ topo_help t_topo_help
case_ topo_named t_topo_named
case_ topo_this t_topo_this
case_ topo_json t_topo_json
case_ topo_write_load t_topo_write_load
case_ topo_bad_machine t_topo_bad_machine
case_ topo_usage t_topo_usage
case_ viz_machine t_viz_machine
case_ compile_help t_compile_help
case_ compile_simulate t_compile_simulate
case_ compile_json t_compile_json
case_ compile_reference_cluster t_compile_reference_cluster
case_ compile_parameter_servers t_compile_parameter_servers
case_ compile_reproducible t_compile_reproducible
case_ compile_baselines t_compile_baselines
case_ compile_this t_compile_this
case_ compile_errors t_compile_errors
case_ compile_failures t_compile_failures
case_ simulate_hand_written t_simulate_hand_written
case_ simulate_machines t_simulate_machines
case_ simulate_errors t_simulate_errors
case_ simulate_compare t_simulate_compare
case_ bench_accuracy_usage t_bench_accuracy_usage
case_ bench_kernels_usage t_bench_kernels_usage
case_ viz_plan t_viz_plan

# ---- pml train: plans that do not fit the run, tasks that fail, signals at any moment
# plans made with `pml compile` for this machine (data parallel: no search), then edited
train_plans() {
    [ -f "$TMP/tp/mlp16.dot" ] && return 0
    mkdir -p "$TMP/tp" && local d=$TMP/tp
    run 0 compile mlp:units=16 --strategy data --batch 32 -o "$d/mlp16.dot" &&
        run 0 compile mlp:units=32 --strategy data --batch 32 -o "$d/mlp32.dot" &&
        run 0 compile fashion-cnn:filters=8,units=32 --strategy data --batch 32 -o "$d/cnn.dot" &&
        run 0 compile mlp:units=16 --strategy data --batch 32 --machine flexflow-k80 -o "$d/k80.dot" &&
        run 0 compile mlp:units=16 --strategy data --batch 32 \
            --machine "synthetic:pack:1 core:4 pu:1" -o "$d/four.dot" || return 1
    # a device index out of range, a degree that does not divide the batch or the units,
    # a missing operator, a missing config
    sed '/dense1 \[/s/devices="[^"]*"/devices="0,7"/; /dense1 \[/s/config="[^"]*"/config="n=2 c=1 h=1"/' \
        "$d/mlp16.dot" >"$d/device.dot" &&
        sed '/dense1 \[/s/config="[^"]*"/config="n=3 c=1 h=1"/; /dense1 \[/s/devices="[^"]*"/devices="0,0,0"/' \
            "$d/mlp16.dot" >"$d/degree.dot" &&
        sed '/dense1 \[/s/config="[^"]*"/config="n=1 c=3 h=1"/; /dense1 \[/s/devices="[^"]*"/devices="0,0,0"/' \
            "$d/mlp16.dot" >"$d/units.dot" &&
        sed '/dense1 \[/d; s/flatten -> dense1;/flatten -> logits;/; /dense1 -> logits/d' \
            "$d/mlp16.dot" >"$d/missing.dot" &&
        sed '/dense1 \[/s/, config="[^"]*"//' "$d/mlp16.dot" >"$d/noconfig.dot"
}
t_train_bad_plans() {
    train_plans || return 1
    local d=$TMP/tp a="--train-samples 64 --test-samples 32 --epochs 1"
    run 0 train mlp:units=16 --plan "$d/mlp16.dot" $a && has "$out" "Plan: $d/mlp16.dot" || return 1
    run 1 train mlp:units=16 --plan "$d/mlp32.dot" $a && one_line && has "$err" "$d/mlp32.dot: " &&
        has "$err" "another model" && has "$err" "'dense1'" || return 1
    run 1 train mlp:units=16 --plan "$d/cnn.dot" $a && one_line && has "$err" "$d/cnn.dot: " &&
        has "$err" "operator 'conv1' (conv2d) is not in model 'mlp'" || return 1
    run 1 train mlp:units=16 --plan "$d/mlp16.dot" --batch 64 $a && one_line &&
        has "$err" "$d/mlp16.dot: " && has "$err" "batch 32, not 64" || return 1
    run 1 train mlp:units=16 --plan "$d/k80.dot" $a && one_line && has "$err" "$d/k80.dot: " &&
        has "$err" "machine 'flexflow-k80'" && has "$err" "not for machine 'this'" || return 1
    run 1 train mlp:units=16 --plan "$d/four.dot" $a && one_line && has "$err" "$d/four.dot: " &&
        has "$err" "machine 'synthetic:pack:1 core:4 pu:1'" && has "$err" "machine 'this'" || return 1
    run 1 train mlp:units=16 --plan "$d/mlp16.dot" --threads 1 $a && one_line &&
        has "$err" "machine 'this:1'" || return 1
    run 1 train mlp:units=16 --plan "$d/device.dot" $a && one_line && has "$err" "$d/device.dot: " &&
        has "$err" "operator 'dense1'" && has "$err" "device 7" || return 1
    run 1 train mlp:units=16 --plan "$d/degree.dot" $a && one_line && has "$err" "$d/degree.dot: " &&
        has "$err" "operator 'dense1'" && has "$err" "does not divide 32" || return 1
    run 1 train mlp:units=16 --plan "$d/units.dot" $a && one_line && has "$err" "$d/units.dot: " &&
        has "$err" "operator 'dense1'" && has "$err" "does not divide 16" || return 1
    run 1 train mlp:units=16 --plan "$d/missing.dot" $a && one_line &&
        has "$err" "$d/missing.dot: " && has "$err" "no operator 'dense1'" || return 1
    run 1 train mlp:units=16 --plan "$d/noconfig.dot" $a && one_line &&
        has "$err" "$d/noconfig.dot: " && has "$err" "'dense1'" || return 1
    run 1 train mlp:units=16 --plan "$d/none.dot" $a && one_line && has "$err" "$d/none.dot"
}
t_check_numerics_stops() { # a diverging run stops at the first task whose output is not finite
    local a="--optimizer sgd --lr 1e9 --train-samples 640 --test-samples 32 --epochs 2"
    run 1 train mlp:units=16 --check-numerics --plan data $a && one_line &&
        has "$err" "pml train: epoch 1, step " && has "$err" "task '" &&
        has "$err" "is not finite" || return 1
    run 1 train mlp:units=16 --check-numerics --plan none $a && one_line &&
        has "$err" "node '" && has "$err" "is not finite" || return 1
    run 1 train fashion-cnn:filters=4,units=8 --check-numerics --plan model $a --json &&
        has "$err" "task '" && has "$out" '"error":"epoch 1, step ' || return 1
    # without the check, at the loss
    run 1 train mlp:units=16 --plan data $a && one_line && has "$err" "node 'loss'" &&
        has "$err" "not finite" || return 1
    run 2 train mlp --lr 1e10 && has "$err" "--lr '1e10'"
}

# signal_run SIG MARKER DELAY COMMAND...: starts COMMAND in the background, waits until a line
# of its output starts with MARKER (none: until pml handles SIG), then DELAY seconds, and sends
# SIG; the command must end within 10 s. Its status goes to sig_rc.
signal_run() {
    local sig=$1 marker=$2 delay=$3 i
    shift 3
    "$@" >"$out" 2>"$err" &
    local pid=$!
    if [ -n "$marker" ]; then
        for i in $(seq 1 600); do
            grep -q "^$marker" "$out" "$err" && break
            kill -0 $pid 2>/dev/null || break
            sleep 0.05
        done
    else
        # a background job of a script starts with SIGINT ignored: a SIGINT sent before pml
        # installs its handler (a slow start: a sanitizer, a loaded machine) would be lost
        local bit=$((1 << ($(kill -l "$sig") - 1))) cgt
        for i in $(seq 1 600); do
            cgt=$(sed -n 's/^SigCgt:[[:space:]]*//p' /proc/$pid/status 2>/dev/null)
            [ -n "$cgt" ] && [ $((0x$cgt & bit)) -ne 0 ] && break
            kill -0 $pid 2>/dev/null || break
            sleep 0.02
        done
    fi
    sleep "$delay"
    kill -s "$sig" $pid 2>/dev/null
    for i in $(seq 1 100); do
        kill -0 $pid 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 $pid 2>/dev/null; then
        kill -9 $pid
        wait $pid
        echo "  $* did not end within 10 s of SIG$sig" >&2
        return 1
    fi
    wait $pid
    sig_rc=$?
}
# ended_by SIG [WORDS]: the run stopped for SIG: status 128 + its number, a message naming it
# (followed by WORDS), no sanitizer report
ended_by() {
    local want=$((128 + $(kill -l "$1")))
    [ "$sig_rc" -eq "$want" ] ||
        { echo "  exit $sig_rc after SIG$1, expected $want; stderr: $(head -c 300 "$err")" >&2; return 1; }
    has "$err" "pml train: interrupted by SIG$1 ${2:-}" && ! grep -q "Sanitizer\|runtime error" "$err"
}
t_signal_phases() { # every phase of a run stops cleanly, saying where
    signal_run INT "" 0.1 "$PML" train mlp --plan data --epochs 1 && ended_by INT "while loading" &&
        one_line || return 1
    signal_run TERM "" 1.5 env XDG_CACHE_HOME="$TMP/fresh-cache" "$PML" train mlp:units=24 --epochs 1 &&
        ended_by TERM "while planning" && one_line || return 1
    signal_run TERM Plan: 0.5 "$PML" train mlp --plan data --epochs 1000 &&
        ended_by TERM "at epoch " && one_line && has "$err" "completed" || return 1
    # the epoch it stopped in (unless it stopped right before an epoch's first step)
    grep -q "steps\?, interrupted - " "$out" || grep -q "before its first step" "$err" || return 1
    local f="flowers-cnn:size=32 --data synthetic --batch 16 --plan data --epochs 1"
    signal_run INT Plan: 0.5 "$PML" train $f --train-samples 50000 --validation-split 0.999 \
        --test-samples 16 && ended_by INT "during validation after epoch 1" && one_line &&
        has "$err" "0 epochs completed" || return 1
    signal_run TERM Plan: 0.5 "$PML" train $f --train-samples 16 --test-samples 50000 &&
        ended_by TERM "during the test evaluation" && one_line && has "$err" "1 epoch completed" &&
        has "$out" "Epoch 1/1 - 1/1 - " && ! grep -q "Test loss" "$out"
}
t_signal_json() { # --json: the epochs so far, and what stopped the run
    signal_run INT Plan: 0.5 "$PML" train mlp --plan data --epochs 1000 --json || return 1
    ended_by INT "at epoch " || return 1
    python3 - "$out" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
j = json.loads(text)
assert text.count("\n") == 1, "one line"
assert j["interrupted"] == "SIGINT" and "test_loss" not in j, j
assert len(j["epochs"]) >= 1 and all(0 < e["loss"] < 3 for e in j["epochs"]), j
PY
}
t_signal_sweep() { # signals at several moments of a whole run: a clean stop or the finished run
    local d sig=INT
    for d in 0.1 0.25 0.4 0.6 0.8 1.0 1.3 1.7; do
        signal_run $sig "" $d "$PML" train mlp --plan data --train-samples 20000 \
            --validation-split 0.2 --test-samples 10000 --epochs 2 || return 1
        if [ "$sig_rc" -eq 0 ]; then
            has "$out" "Test loss: " || return 1
        else
            ended_by $sig && one_line || { echo "  (SIG$sig after ${d}s)" >&2; return 1; }
        fi
        [ $sig = INT ] && sig=TERM || sig=INT
    done
}
t_second_signal() { # the first SIGINT gives SIGINT its default action back: a second one kills
    python3 - "$PML" "$TMP" <<'PY'
import os, signal, subprocess, sys, time
pml, tmp = sys.argv[1], sys.argv[2]
out, err = open(tmp + "/o2", "w"), open(tmp + "/e2", "w")
p = subprocess.Popen([pml, "train", "flowers-cnn", "--data", "synthetic", "--batch", "64",
                      "--plan", "data", "--train-samples", "640", "--test-samples", "64",
                      "--epochs", "1"], stdout=out, stderr=err)
def catches():  # SIGINT has a handler
    with open(f"/proc/{p.pid}/status") as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
deadline = time.time() + 60
while "Plan:" not in open(tmp + "/o2").read():
    assert p.poll() is None and time.time() < deadline, "training did not start"
    time.sleep(0.02)
time.sleep(0.3)
assert p.poll() is None and catches(), "pml does not catch SIGINT while training"
p.send_signal(signal.SIGINT)
t0 = time.time()
while p.poll() is None and catches():
    assert time.time() < t0 + 5, "SIGINT still caught after the first one"
    time.sleep(0.001)
if p.poll() is None:
    p.send_signal(signal.SIGINT)
try:
    rc = p.wait(timeout=10)
except subprocess.TimeoutExpired:
    p.kill()
    sys.exit("pml did not end within 10 s of the second SIGINT")
# killed by the second one (or, rarely, the step ended just before it: a clean stop)
assert rc in (-signal.SIGINT, 130), rc
if rc == 130:
    assert "interrupted by SIGINT" in open(tmp + "/e2").read()
PY
}

case_ train_bad_plans t_train_bad_plans
case_ check_numerics_stops t_check_numerics_stops
case_ signal_phases t_signal_phases
case_ signal_json t_signal_json
case_ signal_sweep t_signal_sweep
case_ second_signal t_second_signal

# ---- hardening: what a hostile or unlucky environment does to pml
devnode() { # devnode PATH MAJOR MINOR: a device node of our own (root only)
    [ "$(id -u)" = 0 ] && mknod "$1" c "$2" "$3" 2>/dev/null
}
t_stdout_errors() { # output that cannot be written is a failure, said once
    local full=$TMP/full
    devnode "$full" 1 7 || { echo "  (skip: cannot make a /dev/full node here)" >&2; return 77; }
    "$PML" train mlp:units=8 --train-samples 64 --test-samples 32 --epochs 1 --json >"$full" 2>"$err"
    [ $? -eq 1 ] && has "$err" "pml train: cannot write to standard output" || return 1
    "$PML" train mlp:units=8 --train-samples 64 --test-samples 32 --epochs 1 >"$full" 2>"$err"
    [ $? -eq 1 ] && has "$err" "cannot write to standard output" && one_line || return 1
    "$PML" --help >"$full" 2>"$err"
    [ $? -eq 1 ] && has "$err" "pml: cannot write to standard output" || return 1
    "$PML" export mlp -o - >"$full" 2>"$err"
    [ $? -eq 1 ] && has "$err" "cannot write to standard output" && one_line
}
t_json_on_failure() { # a run that fails still reports the epochs it completed, and why it failed
    run 1 train mlp:units=16 --optimizer sgd --lr 1e9 --train-samples 640 --test-samples 32 \
        --epochs 2 --plan data --json || return 1
    python3 - "$out" "$err" <<'PY' || return 1
import json, sys
text = open(sys.argv[1]).read()
j = json.loads(text)
assert text.count("\n") == 1, "one line"
assert "not finite" in j["error"], j
assert len(j["epochs"]) >= 1 and "test_loss" not in j, j
assert j["error"] in open(sys.argv[2]).read()
PY
    # the trace cannot be written: the whole run is reported, with the error
    run 1 train mlp:units=8 --train-samples 64 --test-samples 32 --epochs 1 --plan data \
        --trace "$TMP/no/such/dir/t.json" --json || return 1
    python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert "t.json" in j["error"] and len(j["epochs"]) == 1 and "test_loss" in j, j
' "$out"
}
t_low_address_space() { # OpenBLAS never starts threads; a limit too low for BLAS is one message
    if sanitized; then echo "  (skip: a sanitizer needs terabytes of address space)" >&2; return 77; fi
    # the binary maps OpenBLAS, hwloc, libuv, Graphviz, cairo, libjpeg, libpng...: about 110 MB
    (ulimit -v 160000 && timeout 30 "$PML" --help >"$out" 2>"$err")
    [ $? -eq 0 ] && has "$out" "usage: pml" || { echo "  pml --help under ulimit -v 160000" >&2; return 1; }
    (ulimit -v 160000 && timeout 30 "$PML" export mlp -o "$TMP/lowvm.dot" 2>"$err")
    [ $? -eq 0 ] && [ -s "$TMP/lowvm.dot" ] || return 1
    (ulimit -v 200000 && timeout 60 "$PML" train flowers-cnn --data synthetic --max-steps 5 \
        --plan data >"$out" 2>"$err")
    local rc=$?
    [ $rc -eq 1 ] || { echo "  train under ulimit -v 200000: exit $rc: $(head -c 300 "$err")" >&2; return 1; }
    has "$err" "out of" && one_line
}
t_few_descriptors() { # too few file descriptors for the event loop: a message, never an abort
    local n
    for n in 4 5 6 8; do
        python3 - "$n" "$PML" "$out" "$err" <<'PY' || return 1
import resource, subprocess, sys
n, pml, out, err = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
lim = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
with open(out, "w") as o, open(err, "w") as e:
    rc = subprocess.run([pml, "train", "mlp:units=8", "--plan", "data", "--train-samples", "64",
                         "--test-samples", "32", "--epochs", "1"], stdout=o, stderr=e,
                        preexec_fn=lim, timeout=120).returncode
msg = open(err).read()
assert rc == 1, f"ulimit -n {n}: exit {rc}: {msg}"
assert msg.count("\n") == 1 and ("file descriptors" in msg or "open files" in msg), msg
PY
    done
    has "$err" "ulimit -n is 8"
}
# raw: C0 controls (but tab and newline), DEL, C1 controls, U+202A..U+202E
RAW='[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xaa-\xae]'
clean() {
    ! LC_ALL=C grep -qP "$RAW" "$out" "$err" ||
        { echo "  raw control characters: $(cat -v "$out" "$err" | head -c 300)" >&2; return 1; }
}
t_escaped_messages() { # what comes from input reaches the terminal escaped
    local esc
    esc=$(printf '\033')
    run 2 train "mlp${esc}[31m" && clean && has "$err" 'mlp\x1b[31m' || return 1
    run 2 train mlp "--ep${esc}ochs" 3 && clean && has "$err" '--ep\x1bochs' || return 1
    run 2 "tr${esc}ain" && clean && has "$err" 'tr\x1bain' || return 1
    "$PML" export mlp -o "$TMP/m.dot" || return 1
    python3 - "$TMP" <<'PY' || return 1
import sys
d = sys.argv[1]
s = open(d + "/m.dot").read()
s = s.replace("digraph mlp", 'digraph "m\u202eX"')
open(d + "/bidi.dot", "w").write(s.replace("dense1", '"d\u202eevil\u009b31m"'))
open(d + "/badop.dot", "w").write(s.replace("op=linear, out=128", "op=\"lin\u009bear\", out=128"))
PY
    run 1 export "$TMP/badop.dot" -o - && clean && has "$err" 'lin\u009bear' || return 1
    run 0 train "$TMP/bidi.dot" --max-steps 2 --epochs 1 --plan data --test-samples 32 &&
        clean && has "$out" 'm\u202eX' || return 1
    "$PML" compile mlp --batch 32 --budget 0.2 -o "$TMP/p.dot" >/dev/null &&
        "$PML" train mlp --plan "$TMP/p.dot" --max-steps 3 --epochs 1 --test-samples 32 \
            --trace "$TMP/t.json" >/dev/null || return 1
    python3 - "$TMP" <<'PY' || return 1
import json, sys
d = sys.argv[1]
t = json.load(open(d + "/t.json"))
t["otherData"]["model"] += "\u001b[2J\u202e"
json.dump(t, open(d + "/bad.json", "w"))
PY
    run 1 simulate "$TMP/p.dot" --compare "$TMP/bad.json" && clean && has "$err" 'mlp\x1b[2J\u202e'
}
t_absurd_machine() { # absurd speeds keep the table's columns
    "$PML" topo --machine flexflow-k80 -o "$TMP/k80.dot" || return 1
    sed '0,/flops="[^"]*"/s//flops="1e-30"/' "$TMP/k80.dot" >"$TMP/slow.dot"
    run 0 compile mlp --machine "$TMP/slow.dot" --batch 64 --budget 0.5 -o "$TMP/slow-plan.dot" ||
        return 1
    awk '/^  (data|model|owt|search) / { if (length($NF) > 12 && $NF !~ /plan|iterations|s$/) bad = 1 }
         /^  (data|model|owt|search) / { for (i = 1; i <= NF; i++) if (length($i) > 12) bad = 1 }
         END { exit bad }' "$out" || { echo "  a column overflows: $(cat "$out")" >&2; return 1; }
    has "$out" "e+"
}
t_data_dir_slash() { # DIR/ names DIR/file in messages
    local d=$TMP/slash
    fake_dir "$d"
    printf 'not an idx file' >"$d/train-images-idx3-ubyte"
    run 1 train mlp --data "$d/" && has "$err" "$d/train-images-idx3-ubyte" && ! grep -q "//" "$err"
}
t_interrupt_counts() { # the epoch line and the message count the same steps
    signal_run INT Plan: 0.4 "$PML" train mlp --plan data --epochs 1000 || return 1
    ended_by INT "at epoch " || return 1
    local steps
    steps=$(sed -n 's/.* - \([0-9]*\) steps\?, interrupted - .*/\1/p' "$out")
    if [ -n "$steps" ]; then
        has "$err" "after step $steps/"
    else
        has "$err" "before its first step"
    fi
}
t_sighup() { # SIGHUP (a closed terminal) ends training as SIGTERM does: the summary, then 129
    signal_run HUP Plan: 0.4 "$PML" train mlp --plan data --epochs 1000 || return 1
    ended_by HUP "at epoch " && one_line && has "$err" "completed" && has "$out" "interrupted - "
}

# output files: a device node or a FIFO is written through and stays; links are followed to the
# file they lead to, which is replaced; stale temporary files of dead processes go
t_output_devnode() { # every output path, to a character device of our own
    local d=$TMP/dev f
    mkdir -p "$d"
    for f in null null.dot null.svg null.png; do
        devnode "$d/$f" 1 3 || { echo "  (skip: cannot make device nodes here)" >&2; return 77; }
    done
    isdev() { [ -c "$1" ] || { echo "  $1 is no longer a device: $(ls -l "$1")" >&2; return 1; }; }
    run 0 train mlp:units=8 --plan data --train-samples 64 --test-samples 32 --epochs 1 \
        --trace "$d/null" && isdev "$d/null" || return 1
    run 0 export mlp -o "$d/null.dot" && isdev "$d/null.dot" || return 1
    run 0 compile mlp --strategy data --batch 32 -o "$d/null.dot" && isdev "$d/null.dot" || return 1
    run 0 topo --machine flexflow-k80 -o "$d/null.dot" && isdev "$d/null.dot" || return 1
    run 0 viz mlp -o "$d/null.svg" && isdev "$d/null.svg" || return 1
    run 0 viz mlp -o "$d/null.png" && isdev "$d/null.png" || return 1
    [ "$(ls -A "$d" | wc -l)" -eq 4 ] || { echo "  left in $d: $(ls -A "$d")" >&2; return 1; }
    # a device that fails: the error, and the node stays
    devnode "$d/full.dot" 1 7 || return 1
    run 1 export mlp -o "$d/full.dot" && has "$err" "$d/full.dot" && has "$err" "No space" &&
        one_line && isdev "$d/full.dot"
}
t_output_fifo() { # a reader of a FIFO gets the bytes; the FIFO stays
    local d=$TMP/fifo
    mkdir -p "$d" && mkfifo "$d/m.dot" || return 1
    timeout 60 cat "$d/m.dot" >"$d/got" &
    local reader=$!
    run 0 export mlp -o "$d/m.dot"
    local rc=$?
    wait $reader
    [ $rc -eq 0 ] && [ -p "$d/m.dot" ] && has "$d/got" "digraph mlp" &&
        [ "$(ls -A "$d" | wc -l)" -eq 2 ]
}
t_output_links() { # links stay links; what they lead to is replaced, or written through
    local d=$TMP/links
    mkdir -p "$d/plans" "$d/out" || return 1
    # a link to a regular file, and a chain of two relative links
    echo old >"$d/plans/real.dot"
    ln -s plans/real.dot "$d/link.dot" && ln -s ../link.dot "$d/out/chain.dot" || return 1
    run 0 compile mlp --strategy data --batch 32 -o "$d/link.dot" && [ -L "$d/link.dot" ] &&
        has "$d/plans/real.dot" "kind=plan" || return 1
    run 0 export mlp -o "$d/out/chain.dot" && [ -L "$d/out/chain.dot" ] && [ -L "$d/link.dot" ] &&
        has "$d/plans/real.dot" "digraph mlp" || return 1
    ln -s plans/real.svg "$d/draw.svg" && run 0 viz mlp -o "$d/draw.svg" && [ -L "$d/draw.svg" ] &&
        has "$d/plans/real.svg" "<svg" || return 1
    # a dangling link: its target is made where it points
    ln -s plans/new.json "$d/t.json" || return 1
    run 0 train mlp:units=8 --plan data --train-samples 64 --test-samples 32 --epochs 1 \
        --trace "$d/t.json" && [ -L "$d/t.json" ] && has "$d/plans/new.json" "traceEvents" ||
        return 1
    [ "$(ls -A "$d/plans" | tr '\n' ' ')" = "new.json real.dot real.svg " ] ||
        { echo "  in plans/: $(ls -A "$d/plans")" >&2; return 1; }
    # a link to /proc/self/fd/1 with a pipe behind it: written through the pipe
    ln -s /proc/self/fd/1 "$d/stdout.dot" || return 1
    "$PML" export mlp -o "$d/stdout.dot" 2>"$err" | cat >"$d/piped"
    [ "${PIPESTATUS[0]}" -eq 0 ] && [ -L "$d/stdout.dot" ] && has "$d/piped" "digraph mlp" ||
        return 1
    # a link to a folder
    ln -s plans "$d/folder.dot" && run 1 export mlp -o "$d/folder.dot" && one_line &&
        has "$err" "folder" && [ -L "$d/folder.dot" ]
}
t_output_stdout() { # "-" is standard output where a command takes it; --trace - too
    run 0 export mlp -o - && has "$out" "digraph mlp" || return 1
    run 0 topo --machine flexflow-k80 -o - && has "$out" "kind=machine" || return 1
    run 0 train mlp:units=8 --plan data --train-samples 64 --test-samples 32 --epochs 1 \
        --trace - || return 1
    python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["traceEvents"]' "$out" &&
        has "$err" "Test loss" && [ ! -e ./- ] && [ ! -e "$TMP/-" ] || return 1
    run 2 train mlp --trace - --json && has "$err" "pick one" || return 1
    # the per-operator executor has no tasks to record: said before training, nothing written
    run 2 train mlp:units=8 --plan none --train-samples 64 --test-samples 32 --epochs 1 \
        --trace "$TMP/none.json" && has "$err" "needs a --plan other than none" && one_line &&
        [ ! -e "$TMP/none.json" ]
}
t_tmp_sweep() { # a stale .NAME.tmp-PID-N of a dead process goes when NAME is written
    local d=$TMP/sweep dead
    mkdir -p "$d" || return 1
    dead=$(sh -c 'echo $$') # a process that has ended
    touch "$d/.m.dot.tmp-$dead-3" "$d/.m.dot.tmp-$$-3" "$d/.m.dot.tmp-$dead-x" \
        "$d/.other.dot.tmp-$dead-3" || return 1
    run 0 export mlp -o "$d/m.dot" || return 1
    [ ! -e "$d/.m.dot.tmp-$dead-3" ] && [ -e "$d/.m.dot.tmp-$$-3" ] &&
        [ -e "$d/.m.dot.tmp-$dead-x" ] && [ -e "$d/.other.dot.tmp-$dead-3" ] && [ -s "$d/m.dot" ] ||
        { echo "  left in $d: $(ls -A "$d" | tr '\n' ' ')" >&2; return 1; }
}
t_huge_trace() { # a trace larger than the limit is refused by its size (a sparse file: no disk)
    "$PML" compile mlp --strategy data --batch 32 -o "$TMP/huge-plan.dot" >/dev/null &&
        truncate -s 5G "$TMP/huge.json" || return 1
    run 1 simulate "$TMP/huge-plan.dot" --compare "$TMP/huge.json"
    local rc=$?
    rm -f "$TMP/huge.json"
    [ $rc -eq 0 ] && one_line && has "$err" "$TMP/huge.json" && has "$err" "5368709120 bytes" &&
        has "$err" "limit of 4294967296"
}

t_trial() { # no plan given: a trial decides (once), and says so; a plan given is run as given
    local c=$TMP/trial-cache a="mlp:units=16 --train-samples 640 --test-samples 64 --epochs 1" n
    n=$("$PML" topo --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["compute"])')
    [ "$n" -ge 2 ] || { echo "  (skip: this machine has one core: nothing to choose)" >&2; return 77; }
    XDG_CACHE_HOME=$c run 0 train $a || return 1
    has "$out" "Trial (" && has "$out" "per-operator" && has "$out" "one core" &&
        has "$out" "(the fastest in the trial" || return 1
    if grep -q "the next run tries again" "$out"; then # other processes were busy meanwhile
        XDG_CACHE_HOME=$c run 0 train $a && has "$out" "Trial (" || return 1
        grep -q "the next run tries again" "$out" && return 0 # (still busy: nothing more to check)
    fi
    XDG_CACHE_HOME=$c run 0 train $a && ! grep -q "Trial" "$out" &&
        has "$out" "(the fastest in an earlier trial on this machine)" || return 1
    XDG_CACHE_HOME=$c run 0 train $a --plan data && ! grep -q "Trial" "$out" &&
        has "$out" "Plan: data" || return 1
    XDG_CACHE_HOME=$c run 0 train $a --json && ! grep -q "Trial" "$out" || return 1
    # --threads names the cores: one core is not a candidate then
    rm -rf "$c/pml/choices"
    XDG_CACHE_HOME=$c run 0 train $a --threads "$n" && has "$out" "Trial (" &&
        ! grep -q "one core" "$out"
}

# ---- across processes (Open MPI): mpirun on this host, each with a timeout
mpi_ok() { # mpirun is here, pml is built with MPI, and no sanitizer (Open MPI's own leaks)
    command -v mpirun >/dev/null && ldd "$PML" 2>/dev/null | grep -q libmpi && ! sanitized
}
# mpirun itself without meson's MALLOC_PERTURB_: with it Open MPI's launcher (4.1) crashes now
# and then while two ranks report an abort at once, and the message of one is lost
MPIRUN="env -u MALLOC_PERTURB_ mpirun --oversubscribe"
[ "$(id -u)" = 0 ] && MPIRUN="$MPIRUN --allow-run-as-root"
losses() { # losses FILE: the epochs' losses and the test loss of a --json run, one line
    python3 -c 'import json, sys; j = json.load(open(sys.argv[1]))
print(" ".join("%.5g" % e["loss"] for e in j["epochs"]), "%.5g" % j["test_loss"], j.get("ranks", 1))' "$1"
}
t_mpi_same_losses() { # 1, 2 and 4 ranks give the losses of one process with the same global batch
    mpi_ok || { echo "  (skip: no mpirun, or pml without MPI, or a sanitizer build)" >&2; return 77; }
    local a="mlp:units=24 --train-samples 640 --test-samples 320 --epochs 2 --json" plan one n
    for plan in none data; do
        run 0 train $a --threads 1 --plan $plan || return 1
        one=$(losses "$out" | cut -d' ' -f1-3)
        for n in 1 2 4; do
            timeout 120 $MPIRUN -np $n "$PML" train $a --plan $plan >"$out" 2>"$err" ||
                { echo "  -np $n --plan $plan: $(head -c 300 "$err")" >&2; return 1; }
            [ "$(losses "$out")" = "$one $n" ] ||
                { echo "  -np $n --plan $plan: $(losses "$out"), one process: $one" >&2; return 1; }
        done
    done
}
t_mpi_buckets() { # gradients summed in buckets during the backward pass: the same losses
    mpi_ok || { echo "  (skip: no mpirun, or pml without MPI, or a sanitizer build)" >&2; return 77; }
    local a="mlp:units=24,layers=2 --train-samples 640 --test-samples 320 --epochs 2 --json" plan one bm
    for plan in none data; do
        run 0 train $a --threads 1 --plan $plan || return 1
        one=$(losses "$out" | cut -d' ' -f1-3)
        for bm in 0.001 0.1 0; do # a bucket per layer; one bucket; one sum after the pass
            timeout 120 $MPIRUN -np 2 "$PML" train $a --plan $plan --bucket-mb $bm >"$out" 2>"$err" ||
                { echo "  --bucket-mb $bm --plan $plan: $(head -c 300 "$err")" >&2; return 1; }
            [ "$(losses "$out")" = "$one 2" ] ||
                { echo "  --bucket-mb $bm --plan $plan: $(losses "$out"), one process: $one" >&2; return 1; }
            python3 - "$out" "$bm" <<'PY' || return 1
import json, sys
j = json.load(open(sys.argv[1]))
if sys.argv[2] == "0":
    assert "allreduce_seconds" not in j, j
else:
    assert j["allreduce_seconds"] > 0 and 0 <= j["allreduce_hidden"] <= 1, j
    # the rank that ended its pass last, step by step: at most rank 0's seconds
    assert 0 < j["allreduce_last_seconds"] <= j["allreduce_seconds"] * (1 + 1e-6), j
    assert 0 <= j["allreduce_last_hidden"] <= 1, j
PY
        done
    done
    run 2 train mlp --bucket-mb -1 && has "$err" "--bucket-mb" || return 1
    run 2 train mlp --bucket-mb lots && has "$err" "--bucket-mb"
}
t_mpi_shares() { # ranks taking unequal parts of each batch: one process's losses; bad shares
    mpi_ok || { echo "  (skip: no mpirun, or pml without MPI, or a sanitizer build)" >&2; return 77; }
    local a="mlp:units=24 --train-samples 640 --test-samples 320 --epochs 2 --json" one sh
    run 0 train $a --threads 1 --plan none || return 1
    one=$(losses "$out" | cut -d' ' -f1-3)
    for sh in 20,12 32,0 equal auto; do
        timeout 120 $MPIRUN -np 2 "$PML" train $a --shares $sh >"$out" 2>"$err" ||
            { echo "  --shares $sh: $(head -c 300 "$err")" >&2; return 1; }
        [ "$(losses "$out")" = "$one 2" ] ||
            { echo "  --shares $sh: $(losses "$out"), one process: $one" >&2; return 1; }
        python3 - "$out" "$sh" <<'PY' || return 1
import json, sys
j, sh = json.load(open(sys.argv[1])), sys.argv[2]
want = {"20,12": [20, 12], "32,0": [32, 0], "equal": [16, 16]}.get(sh)
assert len(j["shares"]) == 2 and sum(j["shares"]) == 32, j["shares"]
assert want is None or (j["shares"] == want and j["share_tries"] == 0), (sh, j)
PY
    done
    run 2 train mlp --shares 16,16 && has "$err" "this run is one process" && one_line || return 1
    run 2 train mlp --shares 16,x && has "$err" "--shares '16,x'" || return 1
    run 2 train mlp --shares=-1,33 && has "$err" "--shares" || return 1
    local bad want
    for bad in "10,10:add up to 20 samples, not batch=32" "32:1 shares of a batch for 2 ranks" \
        "16,16 --plan data:--plan data, made for equal parts"; do
        want=${bad#*:}
        timeout 120 $MPIRUN -np 2 "$PML" train mlp --max-steps 2 --shares ${bad%%:*} >"$out" 2>"$err" &&
            { echo "  --shares ${bad%%:*}: exit 0" >&2; return 1; }
        has "$err" "$want" || return 1
    done
}
t_mpi_balance() { # ranks re-split each batch by their speeds, on a test clock: kept or undone
    mpi_ok || { echo "  (skip: no mpirun, or pml without MPI, or a sanitizer build)" >&2; return 77; }
    [ -x "${PML_MPI_BALANCE:-}" ] || { echo "  (skip: the mpi_balance helper is not built here)" >&2; return 77; }
    local m line ref
    for m in equal slow fixed drift; do
        line=$(timeout 120 $MPIRUN -np 2 "$PML_MPI_BALANCE" $m 2>"$err") ||
            { echo "  $m: $(head -c 300 "$err")" >&2; return 1; }
        echo "  $m: $line" >&2
        set -- $line
        case $m in # shares, splits tried, kept, reported
        equal) [ "$1 $2 $3 $4" = "16,16 0 0 0" ] && ref="$5 $6 $7" ;;
        slow) [ "$1 $2 $3 $4" = "19,13 1 1 1" ] ;;   # 1.5x slower: 19/13 is the shortest step
        fixed) [ "$1 $3 $4" = "16,16 0 0" ] && [ "$2" -ge 1 ] ;; # tried, no faster, undone
        drift) [ "$1 $3 $4" = "16,16 0 0" ] && [ "$2" -ge 1 ] ;; # the machine's speed-up: not the split's
        esac || { echo "  $m: unexpected shares" >&2; return 1; }
        python3 -c 'import sys; a, b = sys.argv[1].split(), sys.argv[2].split()
assert len(a) == len(b) == 3 and all(abs(float(x) / float(y) - 1) < 1e-4 for x, y in zip(a, b)), (a, b)' \
            "$5 $6 $7" "$ref" || { echo "  $m: losses differ from equal shares'" >&2; return 1; }
    done
}
t_mpi_trace() { # one trace of a run across ranks: a process per rank, the buckets' sums as events
    mpi_ok || { echo "  (skip: no mpirun, or pml without MPI, or a sanitizer build)" >&2; return 77; }
    timeout 120 $MPIRUN -np 2 "$PML" train mlp:units=24,layers=2 --train-samples 320 --test-samples 32 \
        --epochs 1 --plan data --bucket-mb 0.001 --trace "$TMP/mpi_trace.json" >"$out" 2>"$err" ||
        { echo "  $(head -c 300 "$err")" >&2; return 1; }
    python3 - "$TMP/mpi_trace.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
assert t["otherData"]["ranks"] == 2, t["otherData"]
ev = t["traceEvents"]
names = {e["pid"]: e["args"]["name"] for e in ev if e["name"] == "process_name"}
assert names == {0: "rank 0", 1: "rank 1"}, names
steps = 10  # 320 samples, batch 32
for pid in (0, 1):
    tasks = [e for e in ev if e["ph"] == "X" and e["pid"] == pid and e["args"]["kind"] != "allreduce"]
    comm = [e for e in ev if e["ph"] == "X" and e["pid"] == pid and e["args"]["kind"] == "allreduce"]
    assert {e["args"]["kind"] for e in tasks} >= {"fwd", "bwd", "update"}, pid
    buckets = {e["args"]["bucket"] for e in comm}
    assert len(buckets) == 3 and len(comm) == 3 * steps, (pid, len(comm), buckets)
    workers = {e["tid"] for e in tasks}
    assert all(e["tid"] not in workers and e["dur"] >= 0 for e in comm), pid
    # a bucket is summed after the backward task of its layer began, in every step
    for s in range(steps):
        first_bwd = min(e["ts"] for e in tasks if e["args"]["step"] == s and e["args"]["kind"] == "bwd")
        assert all(e["ts"] >= first_bwd for e in comm if e["args"]["step"] == s), (pid, s)
PY
    [ $? = 0 ] || return 1
    # without --plan, a trace records data parallelism over each rank's cores; --plan none has
    # no tasks to record: said before training
    timeout 120 $MPIRUN -np 2 "$PML" train mlp:units=24,layers=2 --train-samples 96 --test-samples 32 \
        --epochs 1 --trace "$TMP/mpi_trace2.json" >"$out" 2>"$err" ||
        { echo "  no --plan: $(head -c 300 "$err")" >&2; return 1; }
    has "$out" "Plan: data, for 16 samples" && [ -s "$TMP/mpi_trace2.json" ] || return 1
    timeout 120 $MPIRUN -np 2 "$PML" train mlp:units=24,layers=2 --train-samples 96 --test-samples 32 \
        --epochs 1 --plan none --trace "$TMP/mpi_trace3.json" >"$out" 2>"$err"
    [ $? != 0 ] && has "$err" "needs a --plan other than none" && [ ! -e "$TMP/mpi_trace3.json" ] &&
        ! grep -q "^Epoch" "$out"
}
t_topo_first_cores() { # this:N: this machine's first N cores, costed as this machine's
    run 0 topo --machine this:1 --json || return 1
    python3 -c 'import json, sys; m = json.load(open(sys.argv[1]))
cpus = [d for d in m["devices"] if d["kind"] == "cpu"]
assert len(cpus) == 1 and cpus[0]["flops"] > 1e8, cpus' "$out" || return 1
    run 0 compile mlp --machine this:1 --batch 32 --strategy data -o "$TMP/one.dot" || return 1
    run 1 topo --machine this:0 && has "$err" "this:N takes a number of cores" && one_line || return 1
    run 1 topo --machine this:x && has "$err" "this:N" || return 1
    run 1 topo --machine this:4000 && has "$err" "this machine has"
}
t_mpi_topo() { # the machine of a run: a node per rank, the network between them measured
    mpi_ok || { echo "  (skip: no mpirun, or pml without MPI, or a sanitizer build)" >&2; return 77; }
    timeout 120 $MPIRUN -np 2 "$PML" topo -o "$TMP/ranks.dot" >"$out" 2>"$err" ||
        { echo "  $(head -c 300 "$err")" >&2; return 1; }
    has "$out" "the machine of this run: 2 ranks of" && has "$out" "measured through MPI now" &&
        has "$out" "2 nodes" && has "$out" "wrote $TMP/ranks.dot" || return 1
    [ "$(grep -c "the machine of this run" "$out")" = 1 ] || return 1 # rank 0 speaks for all
    # every rank runs here: the ranks' CPUs are this machine's cores (their kernels measured)
    local fp
    run 0 topo && fp=$(awk 'NR == 1 { print $4 }' "$out") && [ ${#fp} = 16 ] || return 1
    run 0 topo --machine "$TMP/ranks.dot" && has "$out" "its CPUs are cores of machine $fp (this one" ||
        return 1
    run 0 topo --machine "$TMP/ranks.dot" --json || return 1
    python3 - "$out" "$fp" <<'PY' || return 1
import json, sys
m = json.load(open(sys.argv[1]))
assert m["cores_of"] == sys.argv[2], m.get("cores_of")
cpus = [d for d in m["devices"] if d["kind"] == "cpu"]
assert len({d["node"] for d in cpus}) == 2 and all(d["flops"] > 1e8 for d in cpus), cpus
net = [l for l in m["links"] if "network" in (l["a"], l["b"])]
assert len(net) == 2 and all(l["bw"] > 1e7 and 0 <= l["latency"] < 1e-3 for l in net), net
# a core's hand-off, measured while the other rank sleeps: 0.1 us here, far below 20 us. (Measured
# by both ranks at once, the other rank's spinning threads made it 0.2-2 ms, 3 runs in 5.)
core = [l for l in m["links"] if "core" in l["a"] or "core" in l["b"]]
assert core and all(0 <= l["latency"] < 2e-5 for l in core), core
PY
    run 0 compile fashion-cnn --machine "$TMP/ranks.dot" --batch 32 --strategy data \
        -o "$TMP/ranks-plan.dot" && has "$out" "data"
}
t_mpi_ps() { # parameter servers across ranks: one process's losses over 60 steps (dropout too)
    mpi_ok || { echo "  (skip: no mpirun, or pml without MPI, or a sanitizer build)" >&2; return 77; }
    local a="mlp:units=24,layers=2,dropout=0.1 --train-samples 640 --test-samples 320 --epochs 3 --json"
    local plan one np servers
    for plan in none data; do
        run 0 train $a --threads 1 --plan $plan || return 1
        one=$(losses "$out" | cut -d' ' -f1-4)
        for np in "2 1" "3 1" "4 2"; do
            servers=${np#* }
            np=${np% *}
            timeout 120 $MPIRUN -np $np "$PML" train $a --plan $plan --sync ps --servers $servers \
                >"$out" 2>"$err" ||
                { echo "  -np $np --servers $servers --plan $plan: $(head -c 300 "$err")" >&2; return 1; }
            [ "$(losses "$out")" = "$one $np" ] ||
                { echo "  -np $np --servers $servers --plan $plan: $(losses "$out"), one process: $one" >&2
                  return 1; }
            # pushed in buckets during the backward pass (rank 0: a worker)
            python3 -c 'import json, sys; j = json.load(open(sys.argv[1]))
assert j["buckets"] >= 1 and j["allreduce_seconds"] > 0, j' "$out" || return 1
        done
    done
    # a bucket per layer (their parts in two servers' shards), and one push after the pass
    local bm
    for bm in 0.001 0; do
        timeout 120 $MPIRUN -np 4 "$PML" train $a --plan data --sync ps --servers 2 --bucket-mb $bm \
            >"$out" 2>"$err" || { echo "  --bucket-mb $bm: $(head -c 300 "$err")" >&2; return 1; }
        [ "$(losses "$out")" = "$one 4" ] ||
            { echo "  --bucket-mb $bm: $(losses "$out"), one process: $one" >&2; return 1; }
    done
    # too few ranks, flags that do not go together: one message, no training, no hang
    run 2 train mlp --sync ps && has "$err" "--sync ps: 1 parameter server and at least one worker need 2 ranks" &&
        run 2 train mlp --servers 2 && has "$err" "--servers: parameter servers come with --sync ps" &&
        run 2 train mlp --sync gossip && has "$err" "--sync 'gossip': allreduce or ps" || return 1
    timeout 60 $MPIRUN -np 2 "$PML" train mlp --sync ps --servers 2 >"$out" 2>"$err"
    local rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && has "$err" "need 3 ranks" && ! grep -q "^Epoch" "$out"
}
t_mpi_ps_plan() { # a plan's own parameter servers (pml compile --strategy ps) across the ranks
    mpi_ok || { echo "  (skip: no mpirun, or pml without MPI, or a sanitizer build)" >&2; return 77; }
    local m="mlp:units=24,layers=2,dropout=0.1" one np servers
    local a="$m --train-samples 640 --test-samples 320 --epochs 3 --json"
    run 0 train $a --threads 1 --plan none || return 1
    one=$(losses "$out" | cut -d' ' -f1-4)
    # two workers and one server; two and two (dense1's slice is cut over both servers' shards)
    for np in "3 1" "4 2"; do
        servers=${np#* }
        np=${np% *}
        printf 'digraph ps%s { graph [kind=machine, nodes=%s, ps_nodes=%s, topology="synthetic:pack:1 core:1 pu:1", network_bw="10Gb"]; }' \
            $np $np $servers >"$TMP/ps$np.dot"
        run 0 compile $m --machine "$TMP/ps$np.dot" --batch 32 --strategy ps -o "$TMP/psplan$np.dot" &&
            has "$out" "$servers parameter servers" || return 1
        timeout 120 $MPIRUN -np $np "$PML" train $a --machine "$TMP/ps$np.dot" --plan "$TMP/psplan$np.dot" \
            >"$out" 2>"$err" || { echo "  -np $np: $(head -c 300 "$err")" >&2; return 1; }
        [ "$(losses "$out")" = "$one $np" ] ||
            { echo "  -np $np: $(losses "$out"), one process: $one" >&2; return 1; }
    done
    # the parameters the servers hold come back whole: a saved model evaluates alike
    timeout 120 $MPIRUN -np 4 "$PML" train $a --machine "$TMP/ps4.dot" --plan "$TMP/psplan4.dot" \
        --save "$TMP/ps4.pml" >"$out" 2>"$err" || return 1
    local test_loss
    test_loss=$(python3 -c 'import json, sys; print("%.4f" % json.load(open(sys.argv[1]))["test_loss"])' "$out")
    run 0 evaluate "$TMP/ps4.pml" --test-samples 320 && has "$out" "Test loss: $test_loss"
}
t_mpi_across() { # one plan across the ranks, operators split between them: one process's losses
    mpi_ok || { echo "  (skip: no mpirun, or pml without MPI, or a sanitizer build)" >&2; return 77; }
    local n plan one
    for n in 2 4; do
        timeout 120 $MPIRUN -np $n "$PML" topo -o "$TMP/ranks$n.dot" >"$out" 2>"$err" ||
            { echo "  topo -np $n: $(head -c 300 "$err")" >&2; return 1; }
    done
    # 60 steps with dropout: layers placed on ranks, dense layers split by units (weights and
    # their gradients on the rank of their units), every operator split, alternating layers
    local a="mlp:units=24,layers=2,dropout=0.1 --train-samples 640 --test-samples 320 --epochs 3 --json"
    run 0 train $a --threads 1 --plan none || return 1
    one=$(losses "$out" | cut -d' ' -f1-4)
    for plan in "2 model" "2 owt" "2 param" "2 layers" "4 param" "4 owt" "4 data"; do
        n=${plan% *}
        plan=${plan#* }
        timeout 120 $MPIRUN -np $n "$PML" train $a --machine "$TMP/ranks$n.dot" --plan $plan \
            >"$out" 2>"$err" ||
            { echo "  -np $n --plan $plan: $(head -c 300 "$err")" >&2; return 1; }
        [ "$(losses "$out")" = "$one $n" ] ||
            { echo "  -np $n --plan $plan: $(losses "$out"), one process: $one" >&2; return 1; }
        python3 -c 'import json, sys; j = json.load(open(sys.argv[1]))
assert "across the %s ranks" % sys.argv[2] in j["plan"], j["plan"]' "$out" $n || return 1
    done
    # a saved model holds every rank's partitions, as trained (each rank keeps only its own
    # current): it evaluates as the run's own test did
    local test_loss
    for plan in "2 owt" "4 param"; do
        n=${plan% *}
        plan=${plan#* }
        timeout 120 $MPIRUN -np $n "$PML" train $a --machine "$TMP/ranks$n.dot" --plan $plan \
            --save "$TMP/across$n.pml" >"$out" 2>"$err" ||
            { echo "  -np $n --plan $plan --save: $(head -c 300 "$err")" >&2; return 1; }
        test_loss=$(python3 -c 'import json, sys; print("%.4f" % json.load(open(sys.argv[1]))["test_loss"])' "$out")
        run 0 evaluate "$TMP/across$n.pml" --test-samples 320 && has "$out" "Test loss: $test_loss" ||
            return 1
    done
    # convolutions split by channels and by rows across ranks; a plan file from pml compile; the
    # machine measured at start-up with the searched plan. One convolution kernel everywhere
    # (auto picks by timing, and two kernels round differently)
    a="fashion-cnn --data synthetic --train-samples 192 --test-samples 64 --epochs 1 --json"
    PML_CONV=blas run 0 train $a --threads 1 --plan none || return 1
    one=$(losses "$out" | cut -d' ' -f1-2)
    run 0 compile fashion-cnn --machine "$TMP/ranks2.dot" --batch 32 --iterations 40 \
        -o "$TMP/across.dot" || return 1
    for plan in attr param "$TMP/across.dot"; do
        PML_CONV=blas timeout 120 $MPIRUN -x PML_CONV -np 2 "$PML" train $a \
            --machine "$TMP/ranks2.dot" --plan "$plan" >"$out" 2>"$err" ||
            { echo "  --plan $plan: $(head -c 300 "$err")" >&2; return 1; }
        [ "$(losses "$out")" = "$one 2" ] ||
            { echo "  --plan $plan: $(losses "$out"), one process: $one" >&2; return 1; }
    done
    # batch normalisation (running statistics per replica), a residual add, a concat: the
    # losses of one process with the same plan
    a="fixtures/models/good_branches.dot --data synthetic --train-samples 160 --test-samples 64 --epochs 2 --json"
    for plan in data attr param; do
        PML_CONV=blas run 0 train $a --plan $plan --threads 2 || return 1 # two devices, as two ranks
        one=$(losses "$out" | cut -d' ' -f1-3)
        PML_CONV=blas timeout 120 $MPIRUN -x PML_CONV -np 2 "$PML" train $a \
            --machine "$TMP/ranks2.dot" --plan $plan >"$out" 2>"$err" ||
            { echo "  branches --plan $plan: $(head -c 300 "$err")" >&2; return 1; }
        [ "$(losses "$out")" = "$one 2" ] ||
            { echo "  branches --plan $plan: $(losses "$out"), one process: $one" >&2; return 1; }
    done
    local -x XDG_CACHE_HOME=$TMP/across-cache # a cache of its own: measured, then taken
    timeout 120 $MPIRUN -x XDG_CACHE_HOME -np 2 "$PML" train mlp:units=24 --train-samples 320 --test-samples 64 \
        --epochs 1 --machine ranks --json >"$out" 2>"$err" ||
        { echo "  --machine ranks: $(head -c 300 "$err")" >&2; return 1; }
    has "$out" "across the 2 ranks" && has "$out" "(trial: search " && has "$out" "measured through MPI now" ||
        return 1
    # the next run on the same hosts takes the machine measured then
    timeout 120 $MPIRUN -x XDG_CACHE_HOME -np 2 "$PML" train mlp:units=24 --train-samples 320 --test-samples 64 \
        --epochs 1 --machine ranks --plan data --json >"$out" 2>"$err" ||
        { echo "  --machine ranks again: $(head -c 300 "$err")" >&2; return 1; }
    has "$out" "measured before"
}
t_mpi_across_trace() { # a plan across ranks traces a process per rank, its transfers as tasks
    mpi_ok || { echo "  (skip: no mpirun, or pml without MPI, or a sanitizer build)" >&2; return 77; }
    timeout 120 $MPIRUN -np 2 "$PML" topo -o "$TMP/tr2.dot" >"$out" 2>"$err" || return 1
    run 0 compile mlp:units=24,layers=2 --machine "$TMP/tr2.dot" --batch 32 --strategy owt \
        -o "$TMP/tr2-plan.dot" || return 1
    timeout 120 $MPIRUN -np 2 "$PML" train mlp:units=24,layers=2 --train-samples 320 \
        --test-samples 32 --epochs 1 --machine "$TMP/tr2.dot" --plan "$TMP/tr2-plan.dot" \
        --trace "$TMP/across.json" >"$out" 2>"$err" || { echo "  $(head -c 300 "$err")" >&2; return 1; }
    # the simulator's prediction against every rank's tasks
    run 0 simulate "$TMP/tr2-plan.dot" --machine "$TMP/tr2.dot" --compare "$TMP/across.json" &&
        has "$out" "training steps measured" && has "$out" "xfer" || return 1
    python3 - "$TMP/across.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
o = t["otherData"]
assert o["ranks"] == 2 and o["strategy"] == "owt" and o["across"] is True, o
ev = [e for e in t["traceEvents"] if e["ph"] == "X"]
for pid in (0, 1):
    mine = [e for e in ev if e["pid"] == pid]
    kinds = {e["args"]["kind"] for e in mine}
    assert kinds >= {"fwd", "bwd", "update", "xfer", "message"}, (pid, kinds)
    assert {e["tid"] for e in mine} == {pid}, pid  # rank r runs node r's core
    steps = {e["args"]["step"] for e in mine if e["args"]["phase"] == "train"}
    assert len(steps) == 10, (pid, steps)
PY
}
t_mpi_across_errors() { # a machine or plan that does not fit the run: one message, no hang
    mpi_ok || { echo "  (skip: no mpirun, or pml without MPI, or a sanitizer build)" >&2; return 77; }
    local a="mlp:units=24 --train-samples 320 --test-samples 32 --epochs 1" rc
    timeout 120 $MPIRUN -np 4 "$PML" topo -o "$TMP/e4.dot" >"$out" 2>"$err" || return 1
    run 2 train $a --machine "$TMP/e4.dot" && has "$err" "a machine is given for a run across ranks" &&
        one_line || return 1
    check() { # check WANT ARGS...: refused on every rank, before training, within the timeout
        local want=$1
        shift
        timeout 60 $MPIRUN -np 2 "$PML" train $a "$@" >"$out" 2>"$err"
        rc=$?
        [ $rc -ne 0 ] && [ $rc -ne 124 ] && has "$err" "$want" && ! grep -q "^Epoch" "$out" ||
            { echo "  $*: exit $rc" >&2; return 1; }
    }
    check "the machine has 4 nodes, and mpirun started 2 ranks" --machine "$TMP/e4.dot" || return 1
    check "cannot read '$TMP/none.dot'" --machine "$TMP/none.dot" || return 1
    check "takes no --sync ps" --machine ranks --sync ps || return 1
    check "takes a plan other than none" --machine ranks --plan none || return 1
    printf 'digraph x { graph [kind=machine, nodes=2, topology="synthetic:pack:1 core:1 pu:1"' >"$TMP/cut.dot"
    check "cut.dot" --machine "$TMP/cut.dot" || return 1
    # a node with more cores than its rank has (two ranks share this host's cores)
    local cores
    cores=$(nproc)
    printf 'digraph big { graph [kind=machine, nodes=2, topology="synthetic:pack:1 core:%d pu:1", network_bw="10Gb"]; }' \
        $((cores + 1)) >"$TMP/big.dot"
    # (each rank finds its own node too big; the first to stop may end the other before it says so)
    check "only" --machine "$TMP/big.dot" && has "$err" "has $((cores + 1)) cores, and rank" || return 1
    run 0 compile mlp:units=32 --machine "$TMP/e4.dot" --batch 32 --strategy owt -o "$TMP/o4.dot" || return 1
    timeout 120 $MPIRUN -np 2 "$PML" topo -o "$TMP/e2.dot" >"$out" 2>"$err" || return 1
    check "the plan is for another model" --machine "$TMP/e2.dot" --plan "$TMP/o4.dot"
}
ckpt_parts() { # ckpt_parts FOLDER N: a checkpoint across N ranks: N parts, each with some of the
    # parameters, and the manifest listing each part's size and header checksum
    python3 - "$1" "$2" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
man = open(os.path.join(d, "manifest")).read().splitlines()
assert man[0] == "pml checkpoint manifest 2" and man[-1].startswith("end "), man
parts = [l.split() for l in man if l.startswith("part ")]
assert "parts %d" % n in man and [p[1] for p in parts] == ["part-%05d.ckpt" % r for r in range(n)], man
for r, (_, name, size, crc) in enumerate(parts):
    path = os.path.join(d, name)
    assert os.path.getsize(path) == int(size), (path, size)
    head = open(path, "rb").read(600).decode("latin-1").split("\n")
    assert head[0] == "pml checkpoint part 2" and head[3] == "part %d %d" % (r, n), head[:4]
    assert int(head[4].split()[3]) > 0, ("no parameters in", path, head[4])
    assert head[8] == "data " + crc, (head[8], crc)
PY
}
t_mpi_checkpoint() { # checkpoints of runs across ranks: resumed exactly, and on other rank counts
    mpi_ok || { echo "  (skip: no mpirun, or pml without MPI, or a sanitizer build)" >&2; return 77; }
    local a="mlp:units=24,layers=2,dropout=0.1 --train-samples 640 --test-samples 320 --epochs 3 --json"
    local d=$TMP/mck full n near
    timeout 120 $MPIRUN -np 2 "$PML" topo -o "$TMP/ck-ranks2.dot" >"$out" 2>"$err" || return 1
    # data parallel ranks, then one plan across them (dense layers split by units)
    for how in "--plan data" "--machine $TMP/ck-ranks2.dot --plan owt"; do
        rm -rf "$d"
        timeout 120 $MPIRUN -np 2 "$PML" train $a $how >"$out" 2>"$err" ||
            { echo "  $how: $(head -c 300 "$err")" >&2; return 1; }
        full=$(last_losses "$out")
        timeout 120 $MPIRUN -np 2 "$PML" train $a $how --max-steps 33 --checkpoint "$d" \
            --checkpoint-every 10 >"$out" 2>"$err" || { echo "  $how: $(head -c 300 "$err")" >&2; return 1; }
        [ "$(cd "$d" && echo step-*)" = "step-000000000020.ckpt step-000000000030.ckpt step-000000000033.ckpt" ] ||
            { echo "  $how: $(ls "$d")" >&2; return 1; }
        # each a folder: a part per rank, each holding some of the floats, and the manifest
        # listing them; nothing temporary left
        ckpt_parts "$d/step-000000000033.ckpt" 2 || { echo "  $how" >&2; return 1; }
        [ -z "$(cd "$d" && ls -A | grep -v '^step-')" ] || { echo "  $how: left $(ls -A "$d")" >&2; return 1; }
        timeout 120 $MPIRUN -np 2 "$PML" train $a $how --resume "$d" >"$out" 2>"$err" ||
            { echo "  $how resumed: $(head -c 300 "$err")" >&2; return 1; }
        [ "$(last_losses "$out")" = "$full" ] ||
            { echo "  $how: resumed $(last_losses "$out"), not stopped $full" >&2; return 1; }
        if [ "$how" = "--plan data" ]; then
            # a run killed while writing leaves a folder without its manifest (step 40 here) or a
            # temporary one: resuming passes over them (step 33, exactly), and the checkpoints
            # of the resumed run replace or remove them
            rm -rf "$d.k" && cp -r "$d" "$d.k" || return 1
            cp -r "$d.k/step-000000000033.ckpt" "$d.k/step-000000000040.ckpt" &&
                rm "$d.k/step-000000000040.ckpt/manifest" &&
                cp -r "$d.k/step-000000000040.ckpt" "$d.k/.step-000000000035.ckpt.tmp" || return 1
            timeout 120 $MPIRUN -np 2 "$PML" train $a $how --resume "$d.k" --checkpoint "$d.k" \
                --checkpoint-every 10 >"$out" 2>"$err" || { echo "  killed: $(head -c 300 "$err")" >&2; return 1; }
            python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); assert j["resumed_step"] == 33, j["resumed_step"]' "$out" &&
                [ "$(last_losses "$out")" = "$full" ] ||
                { echo "  killed: resumed $(last_losses "$out"), not stopped $full" >&2; return 1; }
            [ "$(cd "$d.k" && ls -A | tr '\n' ' ')" = "step-000000000040.ckpt step-000000000050.ckpt step-000000000060.ckpt " ] ||
                { echo "  killed: left $(ls -A "$d.k")" >&2; return 1; }
            ckpt_parts "$d.k/step-000000000040.ckpt" 2 || return 1
            # a damaged or missing part, a damaged manifest: refused, naming the file (and the
            # checkpoint before is not taken in its place)
            rm -rf "$d.b" && cp -r "$d" "$d.b" || return 1
            local p=$d.b/step-000000000033.ckpt/part-00001.ckpt
            python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-5] ^= 0x40
open(sys.argv[1], "wb").write(b)' "$p" || return 1
            run 1 train ${a% --json} $how --resume "$d.b" && has "$err" "part-00001.ckpt" && has "$err" "checksum" &&
                one_line || return 1
            timeout 120 $MPIRUN -np 2 "$PML" train $a $how --resume "$d.b" >"$out" 2>"$err" &&
                { echo "  a damaged part resumed across ranks" >&2; return 1; }
            has "$err" "part-00001.ckpt" || return 1
            python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-5] ^= 0x40; b[60] ^= 0x01
open(sys.argv[1], "wb").write(b)' "$p" || return 1
            run 1 train ${a% --json} $how --resume "$d.b" && has "$err" "part-00001.ckpt" && one_line || return 1
            rm "$p"
            run 1 train ${a% --json} $how --resume "$d.b" && has "$err" "part-00001.ckpt" && has "$err" "missing" &&
                one_line || return 1
            sed -i 's/^run 1 32 30$/run 1 32 31/' "$d.b/step-000000000030.ckpt/manifest"
            run 1 train ${a% --json} $how --resume "$d.b/step-000000000030.ckpt" &&
                has "$err" "step-000000000030.ckpt/manifest" && has "$err" "checksum" && one_line || return 1
            rm "$d.b/step-000000000030.ckpt/manifest"
            run 1 train ${a% --json} $how --resume "$d.b/step-000000000030.ckpt" &&
                has "$err" "step-000000000030.ckpt" && has "$err" "without a manifest" && one_line || return 1
        fi
        # elastic: one process, and 4 ranks, go on from it (the sums' order differs: 1e-5)
        for n in 1 4; do
            timeout 120 $MPIRUN -np $n "$PML" train $a --plan data --resume "$d" >"$out" 2>"$err" ||
                { echo "  -np $n from $how: $(head -c 300 "$err")" >&2; return 1; }
            python3 -c 'import sys; a = [float(x) for x in sys.argv[1].split()]; b = [float(x) for x in sys.argv[2].split()]
sys.exit(0 if all(abs(x - y) <= 1e-5 * abs(y) for x, y in zip(a, b)) else 1)' "$(last_losses "$out")" "$full" ||
                { echo "  -np $n from $how: $(last_losses "$out"), $full" >&2; return 1; }
        done
    done
    # parameter servers: Adam's state is on the servers, a shard each; resumed exactly, and by
    # all-reduce ranks (1e-5)
    rm -rf "$d"
    timeout 120 $MPIRUN -np 3 "$PML" train $a --plan data --sync ps >"$out" 2>"$err" ||
        { echo "  ps: $(head -c 300 "$err")" >&2; return 1; }
    full=$(last_losses "$out")
    timeout 120 $MPIRUN -np 3 "$PML" train $a --plan data --sync ps --max-steps 33 --checkpoint "$d" \
        --checkpoint-every 10 >"$out" 2>"$err" || { echo "  ps: $(head -c 300 "$err")" >&2; return 1; }
    ckpt_parts "$d/step-000000000033.ckpt" 3 || { echo "  ps" >&2; return 1; }
    timeout 120 $MPIRUN -np 3 "$PML" train $a --plan data --sync ps --resume "$d" >"$out" 2>"$err" ||
        { echo "  ps resumed: $(head -c 300 "$err")" >&2; return 1; }
    [ "$(last_losses "$out")" = "$full" ] ||
        { echo "  ps: resumed $(last_losses "$out"), not stopped $full" >&2; return 1; }
    timeout 120 $MPIRUN -np 2 "$PML" train $a --plan data --resume "$d" >"$out" 2>"$err" ||
        { echo "  all-reduce from ps: $(head -c 300 "$err")" >&2; return 1; }
    python3 -c 'import sys; a = [float(x) for x in sys.argv[1].split()]; b = [float(x) for x in sys.argv[2].split()]
sys.exit(0 if all(abs(x - y) <= 1e-5 * abs(y) for x, y in zip(a, b)) else 1)' "$(last_losses "$out")" "$full" ||
        { echo "  all-reduce from ps: $(last_losses "$out"), $full" >&2; return 1; }
}
t_mpi_mismatch() { # ranks that would run different things are refused before training
    mpi_ok || { echo "  (skip: no mpirun, or pml without MPI, or a sanitizer build)" >&2; return 77; }
    local a="--train-samples 320 --test-samples 32 --epochs 1 --plan none"
    timeout 60 $MPIRUN -np 1 "$PML" train mlp $a : -np 1 "$PML" train mlp:units=64 $a \
        >"$out" 2>"$err"
    local rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && has "$err" "rank 1 has another" && ! grep -q "^Epoch" "$out"
}
t_mpi_rank_dies() { # a rank killed mid-run ends every rank within seconds: never a hang
    mpi_ok || { echo "  (skip: no mpirun, or pml without MPI, or a sanitizer build)" >&2; return 77; }
    timeout 120 $MPIRUN -np 2 "$PML" topo -o "$TMP/die-ranks.dot" >/dev/null 2>&1 || return 1
    local how
    # data-parallel ranks; one plan across them (a rank waits for the other's messages)
    for how in "--plan none" "--machine $TMP/die-ranks.dot --plan owt"; do
        timeout 60 $MPIRUN -np 2 "$PML" train mlp:units=24 --epochs 1000 --train-samples 640 \
            $how >"$out" 2>"$err" &
        local pid=$! i victim=
        for i in $(seq 1 100); do grep -q "^Epoch 2/" "$out" && break; sleep 0.1; done
        victim=$(pgrep -f "train mlp:units=24 --epochs 1000" | grep -v "^$pid\$" | tail -1)
        [ -n "$victim" ] || { kill $pid; echo "  $how: no rank found" >&2; return 1; }
        kill -9 "$victim"
        wait $pid
        local rc=$?
        [ $rc -ne 0 ] && [ $rc -ne 124 ] ||
            { echo "  $how: mpirun exit $rc after a rank was killed" >&2; return 1; }
        sleep 0.5
        ! pgrep -f "train mlp:units=24 --epochs 1000" >/dev/null ||
            { echo "  $how: ranks left running" >&2; return 1; }
    done
}
t_mpi_sigint() { # Ctrl-C: every rank ends, a non-zero status, no hang
    mpi_ok || { echo "  (skip: no mpirun, or pml without MPI, or a sanitizer build)" >&2; return 77; }
    # python: a background job of this shell would start mpirun with SIGINT ignored; Ctrl-C on a
    # terminal signals the foreground process group: mpirun and its ranks
    timeout 120 $MPIRUN -np 2 "$PML" topo -o "$TMP/int-ranks.dot" >/dev/null 2>&1 || return 1
    local how
    for how in "--plan none" "--machine $TMP/int-ranks.dot --plan owt"; do
    python3 - "$PML" "$out" "$err" "$how" $MPIRUN <<'PY' || { echo "  $how" >&2; return 1; }
import os, signal, subprocess, sys, time
pml, out, err, how, mpirun = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(), sys.argv[5:]
with open(out, "w") as o, open(err, "w") as e:
    p = subprocess.Popen(mpirun + ["-np", "2", pml, "train", "mlp:units=24", "--epochs", "1000",
                         "--train-samples", "640"] + how, stdout=o, stderr=e,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                         start_new_session=True)
    deadline = time.time() + 60
    while "Epoch 2/" not in open(out).read():
        assert p.poll() is None and time.time() < deadline, "training did not start"
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGINT)
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        sys.exit("mpirun did not end within 20 s of SIGINT")
assert p.returncode != 0, "mpirun exited 0 after SIGINT"
# every rank is gone (their last words go through mpirun, which Open MPI ends at once on SIGINT:
# what they print after it may be lost)
time.sleep(1)
left = subprocess.run(["pgrep", "-f", "train mlp:units=24 --epochs 1000"], capture_output=True)
assert not left.stdout.strip(), "ranks left running: " + left.stdout.decode()
PY
    done
}

case_ conv_choice_kept t_conv_choice_kept
case_ checkpoint_resume t_checkpoint_resume
case_ checkpoint_signal t_checkpoint_signal
case_ checkpoint_kill t_checkpoint_kill
case_ checkpoint_errors t_checkpoint_errors
case_ save_evaluate_predict t_save_evaluate_predict
case_ onnx_infer t_onnx_infer
case_ onnx_errors t_onnx_errors
case_ onnx_model t_onnx_model
case_ onnx_export t_onnx_export
case_ onnx_torchvision t_onnx_torchvision
case_ onnx_absent t_onnx_absent
case_ bench_checkpoint t_bench_checkpoint
case_ mpi_same_losses t_mpi_same_losses
case_ mpi_buckets t_mpi_buckets
case_ mpi_shares t_mpi_shares
case_ mpi_balance t_mpi_balance
case_ mpi_trace t_mpi_trace
case_ topo_first_cores t_topo_first_cores
case_ mpi_topo t_mpi_topo
case_ mpi_ps t_mpi_ps
case_ mpi_ps_plan t_mpi_ps_plan
case_ mpi_across t_mpi_across
case_ mpi_across_trace t_mpi_across_trace
case_ mpi_across_errors t_mpi_across_errors
case_ mpi_checkpoint t_mpi_checkpoint
case_ mpi_mismatch t_mpi_mismatch
case_ mpi_rank_dies t_mpi_rank_dies
case_ mpi_sigint t_mpi_sigint
case_ trial t_trial
case_ stdout_errors t_stdout_errors
case_ json_on_failure t_json_on_failure
case_ low_address_space t_low_address_space
case_ few_descriptors t_few_descriptors
case_ escaped_messages t_escaped_messages
case_ absurd_machine t_absurd_machine
case_ data_dir_slash t_data_dir_slash
case_ interrupt_counts t_interrupt_counts
case_ sighup t_sighup
case_ output_devnode t_output_devnode
case_ output_fifo t_output_fifo
case_ output_links t_output_links
case_ output_stdout t_output_stdout
case_ tmp_sweep t_tmp_sweep
case_ huge_trace t_huge_trace
# ---------------------------------------------------------------- pml sweep

SWEEP_DATA=(--epochs 1 --train-samples 512 --test-samples 128 --seed 3)

t_sweep() { # a grid of runs: rows that are their commands' results, tables, plots; a rerun
            # runs nothing again, a larger grid reuses the rows it has, a cut last row goes
    local d="$TMP/sweep"
    run 0 sweep mlp:layers=1 --vary units=8,16 --vary threads=1,2 "${SWEEP_DATA[@]}" -o "$d" ||
        return 1
    has "$out" "[4/4] units=16 threads=2" && has "$out" "4 of 4 runs done" || return 1
    [ "$(wc -l <"$d/results.jsonl")" -eq 4 ] && [ "$(wc -l <"$d/results.csv")" -eq 5 ] ||
        { echo "  $(wc -l <"$d/results.jsonl") rows" >&2; return 1; }
    has "$d/results.csv" "units,threads,repeat,loss,accuracy,val_loss" || return 1
    has "$d/results.md" "| 8 (baseline) |" && has "$d/results.md" "## threads" &&
        has "$d/results.md" "## Every point" || return 1
    # a row holds what its command gives when run alone
    run 0 train mlp:layers=1,units=16 "${SWEEP_DATA[@]}" --threads 1 --json || return 1
    python3 - "$d" "$out" <<'PY' || return 1
import json, sys
d, direct = sys.argv[1], json.load(open(sys.argv[2]))
rows = [json.loads(l) for l in open(d + "/results.jsonl")]
assert sorted((r["params"]["units"], r["params"]["threads"]) for r in rows) == \
    [(8, 1), (8, 2), (16, 1), (16, 2)], rows
r = [r for r in rows if r["params"] == {"units": 16, "threads": 1}][0]
assert r["command"] == ("pml train mlp:layers=1,units=16 --epochs 1 --train-samples 512 "
                        "--test-samples 128 --seed 3 --threads 1"), r["command"]
assert abs(r["test_loss"] - direct["test_loss"]) <= 1e-9 * abs(direct["test_loss"]), (r, direct)
assert r["test_accuracy"] == direct["test_accuracy"] and r["seconds"] > 0 and r["version"]
# the same seed and data: one point's runs on 1 and 2 threads learn the same to 1e-5
for u in (8, 16):
    a, b = [x["test_loss"] for x in rows if x["params"]["units"] == u]
    assert abs(a - b) <= 1e-5 * abs(a), (a, b)
PY
    for f in units threads; do
        [ "$(head -c 8 "$d/plots/$f.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
            head -c 200 "$d/plots/$f.svg" | grep -q "<svg" || { echo "  plots/$f" >&2; return 1; }
    done
    run 0 sweep mlp:layers=1 --vary units=8,16 --vary threads=1,2 "${SWEEP_DATA[@]}" -o "$d" &&
        has "$out" "4 already in" && has "$out" "0 to go" && ! grep -q "^\[" "$out" || return 1
    printf '{"key":"pml train mlp' >>"$d/results.jsonl" # a row cut short by a crash
    run 0 sweep mlp:layers=1 --vary units=8,16,32 --vary threads=1,2 --one-at-a-time \
        "${SWEEP_DATA[@]}" -o "$d" && has "$out" "4 runs (4 points x 1), one parameter at a time" &&
        has "$out" "3 already in" && has "$out" "[4/4] units=32 threads=1" || return 1
    [ "$(wc -l <"$d/results.jsonl")" -eq 5 ] && [ "$(tail -c 1 "$d/results.jsonl" | od -An -c | tr -d ' ')" = '\n' ] ||
        { echo "  the cut row stayed" >&2; return 1; }
    has "$d/results.md" "| 32 |" && ! grep -q "Every point" "$d/results.md" || return 1
    sed -i '1s/^/{"key": oops\n/' "$d/results.jsonl" # a malformed row before others: refused
    run 1 sweep mlp:layers=1 --vary units=8 --vary threads=1 "${SWEEP_DATA[@]}" -o "$d" &&
        has "$err" "results.jsonl, line 1" && one_line || return 1
}

t_sweep_runs_fail() { # a run that fails: said with its log, the others go on, exit 1
    local d="$TMP/sweep-fail"
    run 1 sweep mlp:units=8,layers=1 --vary threads=1,100000 "${SWEEP_DATA[@]}" -o "$d" &&
        has "$err" "threads=100000 failed" && has "$err" "logs/threads=100000-r1.log" || return 1
    [ "$(wc -l <"$d/results.jsonl")" -eq 1 ] && has "$d/results.md" "| 100000 | – |" || return 1
}

t_sweep_errors() { # bad flags: one message, exit 2, nothing made
    local d="$TMP/sweep-bad" m=mlp:layers=1
    run 2 sweep $m -o "$d" && has "$err" "missing --vary" && one_line || return 1
    run 2 sweep $m --vary units=8 && has "$err" "missing -o DIR" && one_line || return 1
    run 2 sweep --vary units=8 -o "$d" && has "$err" "missing MODEL" && one_line || return 1
    run 2 sweep $m --vary units -o "$d" && has "$err" "expected KEY=V1,V2" && one_line || return 1
    run 2 sweep $m --vary units=8,,16 -o "$d" && has "$err" "an empty value" && one_line || return 1
    run 2 sweep $m --vary units=8,8 -o "$d" && has "$err" "8 given twice" && one_line || return 1
    run 2 sweep $m --vary units=8 --vary units=16 -o "$d" && has "$err" "--vary units given twice" ||
        return 1
    run 2 sweep $m --vary threads=1,two -o "$d" && has "$err" "'two' is not a number" || return 1
    run 2 sweep $m --vary threads=0 -o "$d" && has "$err" "not a positive integer" || return 1
    run 2 sweep $m --vary epochs=1,2 --epochs 3 -o "$d" && has "$err" "--epochs is given and varied" ||
        return 1
    run 2 sweep $m --vary units=8 --lr fast -o "$d" && has "$err" "--lr: 'fast' is not a number" ||
        return 1
    run 2 sweep $m --vary units=8,16 --baseline units=32 -o "$d" &&
        has "$err" "units=32 is not among --vary units's values" && one_line || return 1
    run 2 sweep $m --vary units=8 --baseline layers=1 -o "$d" &&
        has "$err" "layers is not a parameter the sweep varies" || return 1
    run 2 sweep $m --vary nosuch=1,2 -o "$d" && has "$err" "the point nosuch=1" && one_line ||
        return 1
    run 2 sweep fixtures/models/good_grouped.dot --vary units=8 -o "$d" &&
        has "$err" "a model file has no parameters" && one_line || return 1
    run 2 sweep $m --vary data=a,b -o "$d" && has "$err" "one dataset" || return 1
    run 2 sweep $m --vary units=8 --wat -o "$d" && has "$err" "--wat" || return 1
    [ ! -e "$d" ] || { echo "  $d was made" >&2; return 1; }
    run 1 sweep $m --vary units=8 "${SWEEP_DATA[@]}" -o "$TMP/no/such/dir" &&
        has "$err" "cannot make" && one_line || return 1
}

t_sweep_signal() { # Ctrl-C: the run under way finishes and is kept; the same command goes on
    local d="$TMP/sweep-int"
    local args=(sweep mlp:layers=1 --vary units=16,32,48 --epochs 2 --train-samples 8000
                --test-samples 128 -o "$d")
    timeout 120 "$PML" "${args[@]}" >"$out" 2>"$err" &
    local pid=$! i
    for i in $(seq 600); do
        [ -s "$d/results.jsonl" ] && break
        sleep 0.1
    done
    kill -INT $pid
    wait $pid
    local rc=$?
    [ $rc -eq 130 ] && has "$err" "run the same command again to go on" || { echo "  exit $rc" >&2; return 1; }
    local n
    n=$(wc -l <"$d/results.jsonl")
    [ "$n" -ge 1 ] && [ "$n" -lt 3 ] || { echo "  $n rows" >&2; return 1; }
    python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$d/results.jsonl" || return 1
    run 0 "${args[@]}" && has "$out" "$n already in" && [ "$(wc -l <"$d/results.jsonl")" -eq 3 ] || return 1
}

case_ sweep t_sweep
case_ sweep_runs_fail t_sweep_runs_fail
case_ sweep_errors t_sweep_errors
case_ sweep_signal t_sweep_signal

t_summary() { # Keras' model.summary(): rows, totals that are the rows' sums, PyTorch's counts
    run 0 summary fashion-cnn && has "$out" 'Model: "fashion-cnn"' &&
        has "$out" "conv2 (conv2d)" && has "$out" "(None, 64, 11, 11)" &&
        has "$out" "Total params: 225,034" || return 1
    run 0 summary resnet50 && has "$out" "Trainable params: 25,557,032" &&
        has "$out" "Non-trainable params: 53,120" || return 1
    run 0 summary inception-v3 --json || return 1
    python3 - "$out" <<'PY' || return 1
import json, sys
j = json.load(open(sys.argv[1]))
assert j["version"] and j["model"] == "inception-v3" and j["input"] == [3, 299, 299], j["input"]
assert sum(l["parameters"] for l in j["layers"]) == j["parameters"] == 23834568, j["parameters"]
assert abs(sum(l["flops"] for l in j["layers"]) - j["flops"]) <= 1e-9 * j["flops"]
names = {l["name"] for l in j["layers"]}
seen = set()
for l in j["layers"]: # in the order they run: every input before its reader
    assert all(i in seen for i in l["inputs"]), l
    seen.add(l["name"])
PY
    run 2 summary && has "$err" "missing MODEL" && one_line || return 1
    run 2 summary mlp mlp && has "$err" "one MODEL" && one_line || return 1
    run 2 summary nosuch-model && has "$err" "nosuch-model" && one_line || return 1
}

case_ summary t_summary

t_json_errors() { # --json: a command that fails prints one object with the error; usage errors exit 2
    local c
    for c in "train resnet9000" "compile mlp --machine flexflow-v100 --batch 8 -o $TMP/json-errors.dot" \
        "summary mlp:unitz=3" "topo --machine flexflow-v100" "train mlp --plan dta" \
        "evaluate $TMP/none.pml" "train mlp --epochs 0"; do
        local want=2
        [ "${c#evaluate}" != "$c" ] && want=1
        run $want $c --json || return 1
        python3 - "$out" "$err" "${c%% *}" $want <<'PY' || return 1
import json, sys
o = open(sys.argv[1]).read()
assert o.count("\n") == 1, o
j = json.loads(o)
assert j["version"] and j["command"] == sys.argv[3] and j["exit"] == int(sys.argv[4]), j
assert j["error"] and j["error"] in open(sys.argv[2]).read(), (j, open(sys.argv[2]).read())
PY
    done
    [ ! -e "$TMP/json-errors.dot" ] || return 1
    # a command that printed its object prints no second one
    run 0 summary mlp --json && [ "$(wc -l <"$out")" -eq 1 ] || return 1
}

case_ json_errors t_json_errors

t_compile_interrupt() { # on a terminal the search shows its progress; Ctrl-C keeps the best so far
    command -v script >/dev/null || { echo "  skip: no script(1) for a terminal" >&2; return 77; }
    local log="$TMP/compile-tty.log" p="$TMP/interrupted.dot" i pid
    script -qfc "'$PML' compile alexnet --machine flexflow-k80 --batch 1024 --budget 100 -o '$p'; echo \"rc=\$?\"" \
        "$log" >/dev/null 2>&1 &
    local sc=$!
    for i in $(seq 600); do grep -q "searching: best" "$log" 2>/dev/null && break; sleep 0.1; done
    grep -q "searching: best" "$log" || { echo "  no progress line: $(head -c 300 "$log")" >&2; kill $sc; return 1; }
    pid=$(pgrep -f -n "^$PML compile alexnet --machine flexflow-k80 --batch 1024 --budget 100")
    kill -INT "$pid"
    for i in $(seq 300); do grep -q "rc=" "$log" && break; sleep 0.1; done
    wait $sc
    tr '\r' '\n' <"$log" >"$log.txt"
    has "$log.txt" "rc=130" && has "$log.txt" "interrupted: the search stops with the best plan found so far" &&
        has "$log.txt" "(Ctrl-C: keep the best so far)" || return 1
    run 0 simulate "$p" && has "$out" "strategy search" || return 1
}

case_ compile_interrupt t_compile_interrupt

t_option_syntax() { # every command's options: --opt=value, -oFILE, unique prefixes, --; help from the same table
    local p="$TMP/syntax.dot" o
    run 0 compile mlp --bat 8 --str=data -o"$p" && [ -s "$p" ] || return 1
    run 2 compile --batch=8 --strategy data -o "$p" -- -mlp && has "$err" "unknown model '-mlp'" || return 1
    run 2 compile mlp --batch 8 --s data -o "$p" && one_line &&
        has "$err" "--s is ambiguous (--strategy, --seed, --sync)" || return 1
    run 0 compile --help || return 1
    for o in machine batch strategy mesh layout budget iterations seed chains sync output json help; do
        grep -qE -- "^  (-[a-z], )?--$o( |\$)" "$out" || { echo "  compile --help lacks --$o" >&2; return 1; }
    done
}

case_ option_syntax t_option_syntax

echo "# $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
