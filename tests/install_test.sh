#!/usr/bin/env bash
# `cmake --install` then an outside project's find_package(siam) builds examples/simclr_minimal.cpp
# (ctest label install). Usage: install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD=$1
SRC=$2
WORK=$(mktemp -d /tmp/siam_install.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cmake --install "$BUILD" --prefix "$WORK/prefix" > "$WORK/install.log"
test -f "$WORK/prefix/lib/cmake/siam/siamConfig.cmake"
test -f "$WORK/prefix/include/siam/methods/simclr.h"
cmake -S "$SRC/examples" -B "$WORK/build" -DCMAKE_PREFIX_PATH="$WORK/prefix" -DCMAKE_BUILD_TYPE=Release > "$WORK/cfg.log"
cmake --build "$WORK/build" -j 2 > "$WORK/build.log" || { cat "$WORK/build.log"; exit 1; }
test -x "$WORK/build/simclr_minimal"
echo "install_test: find_package(siam) built simclr_minimal"
