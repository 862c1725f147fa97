#!/usr/bin/env bash
# The cuda tests on the CUDA emulator (kernels/emu/simt.h): siam's own kernels run on the CPU, so their index
# arithmetic, barriers, shuffles and tensor-core fragments are checked against the CPU references on every
# machine. Left out: what tests NVIDIA's libraries rather than siam (NCCL, and the cuBLASLt / cuDNN algorithm
# caches), which the emulator replaces with CPU stand-ins (kernels/emu/dense_emu.cpp).
# Usage: cuda_emu_test.sh SIAM_TESTS_CUDA_EMU [gtest args...]
set -euo pipefail
bin=$1
shift
exclude='Nccl.*:CudaDense.GemmAlgorithmCacheIsReused:CudaDense.Conv2dAlgorithmCacheIsReused'
export SIAM_EXPECT_CUDA=1  # the emulated device must be found: a skip would hide the whole run
# One thread for the CPU sides: ctest runs the two orders side by side with the other tests, where OpenMP teams of
# two per run oversubscribed the 2 cores (each run took 160 to 285 s in CI; alone it takes about 65 s).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec "$bin" --gtest_filter="-${exclude}" "$@"
