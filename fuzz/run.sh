#!/usr/bin/env bash
# Builds the libFuzzer targets (preset `fuzz`, clang) and fuzzes each parser for SECONDS
# (default 15; CI uses the default, a longer run is e.g. `fuzz/run.sh 3600`). New corpus entries
# go to a scratch folder; a crasher is copied to fuzz/regressions/<target>/ and fails the run,
# so it can be committed as a regression test (the replay tests run them in every build).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz >/dev/null
status=0
for t in wisdm hapt_labels npy csv; do
  work=$(mktemp -d)
  cp fuzz/corpus/$t/* "$work/" 2>/dev/null || true
  if ! (cd "$work" && ASAN_OPTIONS=detect_leaks=1 "$OLDPWD/build/fuzz/fuzz/fuzz_$t" -max_total_time="$secs" \
        -max_len=4096 -print_final_stats=1 "$work" > "$work/log" 2>&1); then
    echo "fuzz_$t: FOUND A CRASH"; tail -30 "$work/log"
    for c in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do [ -f "$c" ] && cp "$c" fuzz/regressions/$t/; done
    status=1
  else
    echo "fuzz_$t: $(grep -E 'stat::number_of_executed_units' "$work/log" | awk '{print $2}') inputs in ${secs}s, no crash"
  fi
  rm -rf "$work"
done
exit $status
