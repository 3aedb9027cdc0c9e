#!/usr/bin/env bash
# Installs the Debian 12 packages thinkeys needs to build and test. Idempotent:
# when everything is present it only checks and returns.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev
  # c10d's ProcessGroupGloo headers include <gloo/...> (libtorch links libgloo0 itself);
  # without them data-parallel training is compiled out.
  libgloo-dev
  # libtorch-dev accepts any libblas.so.3; the reference BLAS is ~25x slower
  # than OpenBLAS for our GEMMs, so install OpenBLAS (it takes over the alternative).
  libopenblas0-pthread
  nlohmann-json3-dev libcli11-dev libcpp-httplib-dev libsentencepiece-dev libhwy-dev libpcre2-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  clang-format
  # The sanitizer build (asan preset: bad-input tests and fuzz targets) is clang 16
  # with its ASan/UBSan runtimes and libFuzzer; it compiles against GCC 11's
  # libstdc++ headers because Debian's libtorch headers fail in clang with
  # GCC 12's (cmake/clang_torch_headers.cmake)
  clang-16 libclang-rt-16-dev libfuzzer-16-dev libstdc++-11-dev
  # Tests: Debian's Jinja (the chat-template reference, run with /usr/bin/python3),
  # tmux (drives `thinkeys chat` in a real terminal), nginx (replicas behind a
  # load balancer); gnuplot draws the results plots
  python3-jinja2 tmux nginx-light gnuplot-nox
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all build dependencies present"

# Test-only JavaScript dependencies (tests/node/package-lock.json), installed
# exactly as locked. Skipped when the lock is unchanged since the last install.
if command -v npm >/dev/null; then
  node_dir=$(cd "$(dirname "$0")/../tests/node" && pwd)
  stamp=$node_dir/node_modules/.thinkeys-lock
  if ! cmp -s "$node_dir/package-lock.json" "$stamp" 2>/dev/null; then
    echo "setup: npm ci (tests/node)"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$node_dir/package-lock.json" "$stamp"
  fi
else
  echo "setup: npm not found; the end-to-end server and chat-template tests will be skipped" >&2
fi
