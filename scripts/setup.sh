#!/usr/bin/env bash
# Installs every system dependency of siam from Debian packages (idempotent), then configures and builds
# into build/. Usage: scripts/setup.sh [extra cmake args...]   Environment: SIAM_BUILD_TYPE (default Release).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  build-essential cmake pkg-config
  libopenblas-openmp-dev   # BLAS (sgemm/dgemm), OpenMP-threaded so it shares the OpenMP pool with our loops
  libdnnl-dev              # oneDNN: f32 CPU convolutions (JIT direct convs); optional, im2col + BLAS without it
  libomp-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist    # the default dataset: /usr/share/datasets/fashion-mnist
  libyaml-cpp-dev          # YAML configs (view pipelines, recipes)
  libstb-dev               # reference copy of stb_image(_write).h; the build uses third_party/stb
  openmpi-bin libopenmpi-dev  # the CPU communicator (engine/dist) and `mpirun -np N siam train`
  ccache                   # compiler cache, used by CMake when found (rebuilds in several build folders)
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

JOBS=${SIAM_JOBS:-$(nproc)}
cmake -S . -B build -DCMAKE_BUILD_TYPE="${SIAM_BUILD_TYPE:-Release}" "$@"
cmake --build build -j "$JOBS"
