#!/usr/bin/env bash
# Builds the libFuzzer targets (preset `fuzz`, clang) and fuzzes each reader for SECONDS
# (default 15; CI uses the default, a longer run is e.g. `fuzz/run.sh 3600`; TARGETS, e.g.
# `fuzz/run.sh 60 checkpoint dataset`, limits the run to some targets). Saved crashers in
# fuzz/regressions/<target>/ are replayed first. New corpus entries go to a scratch folder; a
# crasher (crash, UBSan report, leak, timeout, out-of-memory / huge allocation) is copied to
# fuzz/regressions/<target>/ and fails the run, so it can be committed as a regression test (the
# replay tests run the corpus and fuzz/regressions in every non-fuzz build).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${1:-15}
shift || true
if [ $# -gt 0 ]; then
  targets="$*"
else
  targets=$(sed -n 's/^set(HARVIT_FUZZ_TARGETS \(.*\))$/\1/p' fuzz/CMakeLists.txt)
fi
[ -n "$targets" ] || { echo "fuzz/run.sh: no targets found in fuzz/CMakeLists.txt" >&2; exit 2; }
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz >/dev/null
# UBSan reports abort (the build's default is to print and go on), so libFuzzer saves them.
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# One OpenMP thread: the parallel readers run the same code, and idle pool threads spinning after
# every input would take the CPU from the fuzzer on a small machine.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# Per input: 10 s is a hang; one allocation over 512 MB from an input of at most 4 KB is a bug.
limits=(-max_len=4096 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512)
failed=()
for t in $targets; do
  bin=$root/build/fuzz/fuzz/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz_$t: no binary at $bin" >&2; failed+=("$t (no binary)"); continue; }
  regdir=$root/fuzz/regressions/$t
  mkdir -p "$regdir"
  if compgen -G "$regdir/*" >/dev/null; then
    if ! "$bin" "${limits[@]}" "$regdir"/* > "/tmp/fuzz_replay_$t.$$.log" 2>&1; then
      echo "fuzz_$t: A SAVED REGRESSION INPUT STILL FAILS (fuzz/regressions/$t):"
      tail -30 "/tmp/fuzz_replay_$t.$$.log"
      failed+=("$t (regression replay)")
    fi
    rm -f "/tmp/fuzz_replay_$t.$$.log"
  fi
  work=$(mktemp -d)
  mkdir "$work/corpus" "$work/tmp"
  cp fuzz/corpus/$t/* "$work/corpus/" 2>/dev/null || true
  if (cd "$work" && TMPDIR="$work/tmp" "$bin" -max_total_time="$secs" "${limits[@]}" -print_final_stats=1 \
        -artifact_prefix="$work/" "$work/corpus" > "$work/log" 2>&1); then
    execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$work/log")
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$work/log" | tail -1)
    echo "fuzz_$t: ${execs:-?} inputs in ${secs}s, no crash (${cov:-no coverage line})"
  else
    tail -30 "$work/log"
    saved=()
    for c in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "$work"/slow-unit-*; do
      [ -f "$c" ] || continue
      cp "$c" "$regdir/"
      saved+=("fuzz/regressions/$t/$(basename "$c")")
    done
    if [ ${#saved[@]} -gt 0 ]; then
      echo "fuzz_$t: FOUND A CRASH, input saved as ${saved[*]} (reproduce: $bin ${saved[0]})"
    else
      echo "fuzz_$t: FAILED without saving an input (see the log above)"
    fi
    failed+=("$t")
  fi
  rm -rf "$work"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz/run.sh: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz/run.sh: all targets ran ${secs}s without a crash: $targets"
