# pml — installs the Debian packages pml needs, if any is missing. Sourced by tools/quickstart
# and tests/run; idempotent: with everything present it changes nothing.
PML_PACKAGES="build-essential meson ninja-build pkg-config python3 libopenblas-dev libhwloc-dev
  libuv1-dev libgraphviz-dev graphviz zlib1g-dev libjpeg62-turbo-dev libpng-dev libopenmpi-dev
  openmpi-bin libdnnl-dev libcairo2-dev
  protobuf-c-compiler libprotobuf-c-dev libonnx-dev libonnx-testdata python3-onnx
  dataset-fashion-mnist"
# the tests also export torchvision's models to ONNX with PyTorch and compare pml's outputs
PML_TEST_PACKAGES="python3-torch python3-torchvision python3-numpy"

# pml_install_deps [MORE PACKAGES...]
pml_install_deps() {
    local missing="" p
    for p in $PML_PACKAGES "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "installing:$missing"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
}

# pml_build DIR [meson options...]: configures DIR once, then builds it.
pml_build() {
    local dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        local log
        log=$(meson setup "$dir" "$@" 2>&1) || { echo "$log"; return 1; }
    fi
    ninja -C "$dir" >/dev/null || ninja -C "$dir"
}
