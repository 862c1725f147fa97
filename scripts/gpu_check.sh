#!/usr/bin/env bash
# GPU check in two steps, for a GPU machine that can neither build siam nor fetch anything.
#
#   scripts/gpu_check.sh bundle [DIR]        on the CPU machine (default DIR: gpu_bundle/, ignored by git)
#     Builds build-gpu/ (SIAM_CUDA=ON, portable -march=x86-64-v3, Release, SIAM_STATIC_DEPS=ON: libstdc++,
#     libgcc, libgomp, OpenBLAS and gtest inside the binaries) and packs every test binary, siam_bench and
#     siam, stripped, with the shared non-NVIDIA, non-glibc libraries they still need in lib/ (run path
#     $ORIGIN/lib; today Debian's libbenchmark and, when oneDNN is found, libdnnl.so.2 with the libgomp.so.1
#     and libOpenCL.so.1 it needs: Debian ships neither as a static library, and with oneDNN the binaries link
#     libgomp shared so that one OpenMP runtime serves both; ~7 MiB more compressed), into
#     DIR/siam_gpu.tar.xz (the binaries share ~25 MiB of static OpenBLAS: xz with a 64 MiB window stores it
#     about once), plus DIR/MANIFEST.txt. NVIDIA libraries (cudart, cuBLAS, cuDNN, NCCL) stay dynamic.
#
#   scripts/gpu_check.sh run OUTDIR [DIR]    on the GPU machine, from the repo root (DIR carried along)
#     Unpacks DIR to a temporary folder, finds the NVIDIA libraries in python3's nvidia pip packages
#     (site-packages/nvidia/*/lib, then /usr/local/cuda), prints nvidia-smi, runs each cuda test binary
#     (siam_tests*_cuda, gtest JSON to OUTDIR/tests_<name>.json) and siam_bench with
#     --benchmark_filter='_cuda|_nccl' (JSON to OUTDIR/bench_cuda.json), and writes OUTDIR/gpu_check.json:
#     {device, tests {passed, failed, skipped}, benchmarks {run, results}, wall_s, ok}. The whole run is
#     bounded by `timeout` to SIAM_GPU_CHECK_BUDGET seconds (default 450, under the 8 minutes allowed);
#     gpu_check.json is written even when a step times out, crashes or finds no device.
#     Files in OUTDIR: run.log, nvidia-smi.txt, tests_*.{json,log}, bench_cuda.{json,log}, gpu_check.json.
#     Environment: SIAM_BENCH_FILTER (default _cuda|_nccl: every BM_*_cuda and BM_allreduce_nccl),
#     SIAM_GTEST_FILTER (default *).
#     Exit status: 0 when no test failed and every step finished; 1 otherwise.
#     Through the device tool: carry ["gpu_bundle"], command `bash scripts/gpu_check.sh run $OUT` (7 files
#     come back, under its limit of 8).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "gpu_check: $*" >&2; exit 2; }

# ---------------------------------------------------------------------------------------------------------
bundle() {
  local dir=${1:-gpu_bundle} build=build-gpu jobs=${SIAM_JOBS:-$(nproc)}
  local t0=$SECONDS
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSIAM_CUDA=ON -DSIAM_NATIVE=OFF \
    -DSIAM_MARCH="${SIAM_MARCH:-x86-64-v3}" -DSIAM_STATIC_DEPS=ON -DSIAM_BUILD_TESTS=ON -DSIAM_BUILD_BENCH=ON
  cmake --build "$build" -j "$jobs"

  local stage=$build/bundle-stage
  rm -rf "$stage" && mkdir -p "$stage/lib"
  local bins=() paths=()
  for f in "$build/siam" "$build"/tests/siam_tests* "$build/bench/siam_bench"; do
    [[ -f $f && -x $f ]] || continue
    strip -o "$stage/$(basename "$f")" "$f"
    bins+=("$(basename "$f")")
    paths+=("$f")
  done
  ((${#bins[@]})) || die "no binaries found in $build"

  # Shared libraries still needed (libbenchmark; libdnnl.so.2, libgomp.so.1, libOpenCL.so.1 with oneDNN), less
  # glibc (always there) and the NVIDIA libraries (found at run time), and libstdc++/libgcc_s, needed only by
  # the copied libraries and present wherever python3 is.
  local skip='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libutil|libresolv|libstdc\+\+|libgcc_s|'
  skip+='libcuda|libcudart|libcublas|libcublasLt|libcudnn.*|libnccl|libnvrtc.*|libnvJitLink|libcufft|libcurand|'
  skip+='libcusolver|libcusparse|libnvToolsExt)\.so'
  for f in "${paths[@]}"; do
    ldd "$f" |
      awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r name path; do
        [[ $name =~ $skip ]] && continue
        [[ -e $stage/lib/$name ]] || cp -L "$path" "$stage/lib/$name"
      done
  done

  mkdir -p "$dir"
  rm -f "$dir/siam_gpu.tar.xz" "$dir/MANIFEST.txt"
  {
    echo "siam gpu bundle"
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (+ local changes)')"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
    echo "flags: CUDA archs $(grep -m1 '^SIAM_CUDA_ARCHS:' "$build/CMakeCache.txt" | cut -d= -f2)," \
      "march ${SIAM_MARCH:-x86-64-v3}, static non-NVIDIA deps"
    echo "nvcc: $(cat "$build"/CMakeFiles/*/CMakeCUDACompiler.cmake | grep -m1 -o 'CMAKE_CUDA_COMPILER_VERSION "[^"]*"')"
    echo "files:"
    (cd "$stage" && find . -type f -printf '  %P %s\n' | sort)
    echo "ldd:"
    for b in "${bins[@]}"; do echo "  $b:"; ldd "$stage/$b" | sed 's/^/   /'; done
  } >"$dir/MANIFEST.txt"
  echo "gpu_check: compressing ${#bins[@]} binaries ($(du -sh "$stage" | cut -f1) unpacked)..."
  tar -C "$stage" -cf - . | xz -9 -T1 >"$dir/siam_gpu.tar.xz"
  local bytes
  bytes=$(du -cb "$dir"/* | tail -1 | cut -f1)
  echo "gpu_check: bundle $dir: $((bytes / 1024 / 1024)) MiB ($bytes bytes) in $((SECONDS - t0)) s: ${bins[*]}"
  ((bytes < 48 * 1024 * 1024)) || echo "gpu_check: WARNING: over 48 MiB; the device machine takes 64 MiB in all"
}

# ---------------------------------------------------------------------------------------------------------
run() {
  local out=${1:-} dir=${2:-gpu_bundle}
  [[ -n $out ]] || die "usage: $0 run OUTDIR [DIR]"
  local budget=${SIAM_GPU_CHECK_BUDGET:-450} start
  start=$(date +%s.%N)
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  exec 3>&1 4>&2 > >(tee "$out/run.log") 2>&1
  local tee_pid=$!
  left() { echo $((budget - ($(date +%s) - ${start%.*}))); }

  # 1. the binaries
  local bin
  if [[ -f $dir/siam_gpu.tar.xz ]]; then
    bin=$(mktemp -d "${TMPDIR:-/tmp}/siam_gpu.XXXXXX")
    tar -C "$bin" -xJf "$dir/siam_gpu.tar.xz"
  elif [[ -x $dir/siam_bench ]]; then
    bin=$(cd "$dir" && pwd)
  else
    die "no bundle in $dir (make one with: scripts/gpu_check.sh bundle $dir)"
  fi
  [[ -f $dir/MANIFEST.txt ]] && head -4 "$dir/MANIFEST.txt"

  # 2. NVIDIA libraries: python3's nvidia pip packages first (torch's own), then a system toolkit.
  local libdirs=() sp d
  if command -v python3 >/dev/null; then
    while read -r sp; do
      # nvidia-cublas / nvidia-cudnn-cu13 / nvidia-nccl-cu13: nvidia/<pkg>/lib (CUDA 13 wheels: nvidia/cu13/lib)
      for d in "$sp"/nvidia/*/lib "$sp"/nvidia/*/lib64; do [[ -d $d ]] && libdirs+=("$d"); done
    done < <(timeout 60 python3 -c 'import site, sys
print("\n".join(dict.fromkeys(site.getsitepackages() + [site.getusersitepackages()] + sys.path)))' 2>/dev/null || true)
  fi
  for d in /usr/local/cuda/lib64 /usr/local/cuda/lib; do [[ -d $d ]] && libdirs+=("$d"); done
  if ((${#libdirs[@]})); then
    local joined
    joined=$(printf '%s:' "${libdirs[@]}")
    export LD_LIBRARY_PATH="${joined%:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  echo "gpu_check: LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"

  # 3. the device
  local device="none"
  if command -v nvidia-smi >/dev/null; then
    timeout 30 nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
    cat "$out/nvidia-smi.txt"
    device=$(timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null |
      head -1 || true)
    [[ -n $device ]] || device="none"
  else
    echo "nvidia-smi not found" | tee "$out/nvidia-smi.txt"
  fi
  echo "gpu_check: device: $device"

  local b missing=0
  for b in "$bin"/siam_tests* "$bin"/siam_bench; do
    [[ -f $b ]] || continue
    if ldd "$b" | grep -q "not found"; then
      echo "gpu_check: $(basename "$b") misses libraries:"; ldd "$b" | grep "not found"; missing=1
    fi
  done
  # which NVIDIA libraries the binaries resolve to (cuDNN loads its engine libraries from the same folder)
  if [[ -f $bin/siam_bench ]]; then
    ldd "$bin/siam_bench" | grep -E "libcud|libcublas|libnccl" | sed 's/^/gpu_check: /' || true
  fi

  # 4. the cuda tests (each siam_tests*_cuda binary), then 5. the CUDA benchmarks, inside the budget
  local rcs=() t name rc
  for t in "$bin"/siam_tests*_cuda; do
    [[ -x $t ]] || continue
    name=$(basename "$t")
    local tl=$(($(left) - 120))  # keep two minutes for the benchmarks
    ((tl > 10)) || tl=10
    echo "gpu_check: $name (timeout ${tl}s)"
    rc=0
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-8} timeout -k 5 "$tl" "$t" --gtest_filter="${SIAM_GTEST_FILTER:-*}" \
      --gtest_output="json:$out/tests_$name.json" >"$out/tests_$name.log" 2>&1 || rc=$?
    tail -n 40 "$out/tests_$name.log"
    rcs+=("$name=$rc")
  done
  local bench_rc=-1
  if [[ -x $bin/siam_bench ]]; then
    local bl=$(($(left) - 15))
    ((bl > 5)) || bl=5
    echo "gpu_check: siam_bench --benchmark_filter=${SIAM_BENCH_FILTER:-_cuda|_nccl} (timeout ${bl}s)"
    bench_rc=0
    timeout -k 5 "$bl" "$bin/siam_bench" --benchmark_filter="${SIAM_BENCH_FILTER:-_cuda|_nccl}" \
      --benchmark_out="$out/bench_cuda.json" --benchmark_out_format=json >"$out/bench_cuda.log" 2>&1 || bench_rc=$?
    tail -n 60 "$out/bench_cuda.log"
  fi

  # 6. the summary
  local ok=0
  GC_OUT="$out" GC_DEVICE="$device" GC_START="$start" GC_TEST_RCS="${rcs[*]:-}" GC_BENCH_RC="$bench_rc" \
    GC_MISSING="$missing" GC_MANIFEST="$dir/MANIFEST.txt" python3 - <<'EOF' || ok=$?
import glob, json, os, re, sys, time
out = os.environ["GC_OUT"]
summary = {"device": os.environ["GC_DEVICE"], "tests": {"passed": 0, "failed": 0, "skipped": 0, "binaries": {}},
           "benchmarks": {"run": 0, "exit_code": int(os.environ["GC_BENCH_RC"]), "results": []}}
try:
    with open(os.environ["GC_MANIFEST"]) as f:
        summary["bundle"] = [l.strip() for l in f.readlines()[1:3]]
except OSError:
    pass
problems = []
if os.environ["GC_MISSING"] != "0":
    problems.append("missing shared libraries (see run.log)")
for item in os.environ["GC_TEST_RCS"].split():
    name, rc = item.rsplit("=", 1)
    rc = int(rc)
    entry = {"exit_code": rc, "passed": 0, "failed": 0, "skipped": 0, "failed_tests": []}
    try:
        with open(os.path.join(out, f"tests_{name}.json")) as f:
            g = json.load(f)
        for suite in g.get("testsuites", []):
            for t in suite.get("testsuite", []):
                if t.get("status", "RUN") != "RUN":
                    continue
                full = f'{suite["name"]}.{t["name"]}'
                if t.get("failures"):
                    entry["failed"] += 1
                    entry["failed_tests"].append(full)
                elif t.get("result") == "SKIPPED":
                    entry["skipped"] += 1
                else:
                    entry["passed"] += 1
    except (OSError, ValueError) as e:
        entry["error"] = f"no gtest JSON ({e.__class__.__name__}): crashed or timed out, see tests_{name}.log"
    if rc != 0 and not entry["failed"]:
        problems.append(f"{name} exited with {rc}" + (" (timeout)" if rc in (124, 137) else ""))
    for k in ("passed", "failed", "skipped"):
        summary["tests"][k] += entry[k]
    summary["tests"]["binaries"][name] = entry
if not summary["tests"]["binaries"]:
    summary["tests"]["note"] = "no cuda test binary (siam_tests*_cuda) in the bundle"
if summary["tests"]["failed"]:
    problems.append(f'{summary["tests"]["failed"]} test(s) failed')
try:
    with open(os.path.join(out, "bench_cuda.json")) as f:
        bj = json.load(f)
    summary["benchmarks"]["context"] = {k: bj.get("context", {}).get(k) for k in ("num_cpus", "mhz_per_cpu")}
    for b in bj.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration":
            continue
        r = {"name": b["name"], "real_time": b.get("real_time"), "time_unit": b.get("time_unit")}
        for k in ("flops", "bytes", "bytes_peak", "error_message"):
            if k in b:
                r[k] = b[k]
        summary["benchmarks"]["results"].append(r)
    summary["benchmarks"]["run"] = len(summary["benchmarks"]["results"])
except (OSError, ValueError):
    summary["benchmarks"]["note"] = "no benchmark JSON (no benchmark matched the filter, or siam_bench failed)"
brc = summary["benchmarks"]["exit_code"]
if brc in (124, 137):
    problems.append("siam_bench timed out")
elif brc > 0:
    problems.append(f"siam_bench exited with {brc}")
summary["wall_s"] = round(time.time() - float(os.environ["GC_START"]), 1)
summary["ok"] = not problems
summary["problems"] = problems
with open(os.path.join(out, "gpu_check.json"), "w") as f:
    json.dump(summary, f, indent=1)
t = summary["tests"]
print(f'gpu_check: device {summary["device"]}; tests {t["passed"]} passed, {t["failed"]} failed, '
      f'{t["skipped"]} skipped; {summary["benchmarks"]["run"]} benchmarks; {summary["wall_s"]} s; '
      + ("ok" if summary["ok"] else "PROBLEMS: " + "; ".join(problems)))
sys.exit(0 if summary["ok"] else 1)
EOF
  [[ $bin == "${TMPDIR:-/tmp}"/siam_gpu.* ]] && rm -rf "$bin"
  exec 1>&3 2>&4 3>&- 4>&-
  wait "$tee_pid" 2>/dev/null || true  # run.log complete before the caller collects OUTDIR
  return "$ok"
}

case "${1:-}" in
  bundle) shift; bundle "$@" ;;
  run) shift; run "$@" ;;
  *) die "usage: $0 bundle [DIR]  |  $0 run OUTDIR [DIR]" ;;
esac
