# Shared by scripts/*: install Debian packages and configure+build one tree. Sourced, not run.
set -euo pipefail
REMORA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Everything a build, the tests and the fuzzers need. Benchmark peers live in bench/run.
REMORA_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libuv1-dev libnghttp2-dev node-llhttp libssl-dev libabsl-dev libyaml-cpp-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-14 libclang-rt-14-dev clang-format-14
  python3 python3-websockets python3-h2 python3-grpcio curl nghttp2-client nghttp2-server prometheus procps
  iproute2 iptables openssl util-linux sslscan
)

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs missing packages. In CI it always refreshes the package lists first.
install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${CI:-}" = "true" ] || [ ${#missing[@]} -gt 0 ]; then
    echo "==> apt-get install ${missing[*]:-(all present)}"
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -q
    if [ ${#missing[@]} -gt 0 ]; then
      sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
    fi
  fi
}

# build_tree NAME [cmake args...]: configures build/NAME once and builds it.
build_tree() {
  local name="$1"
  shift
  local dir="$REMORA_ROOT/build/$name"
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -S "$REMORA_ROOT" -B "$dir" -G Ninja "$@" >/dev/null
  fi
  echo "==> building build/$name"
  cmake --build "$dir" -j "$(nproc)"
}
