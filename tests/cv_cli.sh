#!/usr/bin/env bash
# `harvit cv` through the CLI on the bundled WISDM windows (36 users), a tiny ViT for 2 epochs, 3
# folds: the report files; the same numbers from one process, from --jobs 2 and (when harvit was
# built with MPI) from mpirun -np 2; a second run skips the folds done; --only; a worker that fails
# names its fold; --combine (an ensemble of finished runs); clear errors for bad --folds, --only,
# --jobs, --combine and a missing dataset.
# Arguments: harvit, the test data folder, whether harvit has MPI (1/0), mpirun, sanitizer build (1/0).
set -euo pipefail
H=$1
DATA=$2/bundled-wisdm
HAVE_MPI=${3:-0}
MPIRUN=${4:-}
SANITIZE=${5:-0}
HERE=$(dirname "$0")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "cv_cli: FAILED: $*" >&2; exit 1; }
[ -f "$DATA/wisdm_X.npy" ] || fail "bundled WISDM windows missing: $DATA (tests/unpack_datasets.sh unpacks them)"
case "${CI:-}" in ""|0|false|False|FALSE) ci=0 ;; *) ci=1 ;; esac

$H prepare --dataset wisdm-npy --data "$DATA" --split subject --seed 0 --out "$W/d.bin" > /dev/null
# --threads 1 everywhere: a fold's numbers are bit-identical for a given thread count.
TINY=(--data "$W/d.bin" --D 16 --H 2 --A 8 --L 1 --hidden 32 --epochs 2 --batch 64 --seed 3 --threads 1)

$H cv "${TINY[@]}" --folds 3 --out "$W/one" > "$W/one.log" 2>&1 || fail "1 process: $(cat "$W/one.log")"
grep -q "3 of 3 folds: accuracy " "$W/one.log" || fail "summary line: $(cat "$W/one.log")"
grep -q "report: $W/one/cv.md" "$W/one.log" || fail "report line: $(cat "$W/one.log")"
for f in cv.json cv.md per_subject.png confusion.png fold-01/best.safetensors fold-01/history.json \
         fold-01/predictions.safetensors fold-01/result.json fold-03/result.json; do
  [ -s "$W/one/$f" ] || fail "missing $W/one/$f"
done
for f in per_subject.png confusion.png; do python3 "$HERE/png_check.py" "$W/one/$f" 600 400 || fail "$f does not decode"; done
grep -q "^| mean +- sd over folds | \*\*0\.[0-9]* +- 0\.[0-9]*\*\* |" "$W/one/cv.md" || fail "cv.md: no mean +- sd row"
grep -q "^## Per subject (hardest first)" "$W/one/cv.md" || fail "cv.md: no per-subject table"
grep -q "^## Pooled confusion matrix" "$W/one/cv.md" || fail "cv.md: no confusion matrix"
grep -q "harvit cv --data" "$W/one/cv.md" || fail "cv.md: no command"

python3 - "$W/one/cv.json" <<'PY' || fail "cv.json"
import json, statistics, sys
j = json.load(open(sys.argv[1]))
assert j["folds_total"] == 3 and j["folds_done"] == 3
subjects = [s["subject"] for s in j["subjects"]]
assert sorted(subjects) == list(range(36)), subjects          # every user tested exactly once
tested = [s for f in j["folds"] for s in f["test_subjects"]]
assert sorted(tested) == list(range(36))
for f in j["folds"]:
    assert not set(f["test_subjects"]) & set(f["val_subjects"]), f
accs = [f["accuracy"] for f in j["folds"]]
assert abs(j["accuracy"]["mean"] - statistics.mean(accs)) < 1e-12
assert abs(j["accuracy"]["sd"] - statistics.stdev(accs)) < 1e-12
cm = j["pooled"]["confusion"]
n = sum(sum(r) for r in cm)
assert n == sum(s["total"] for s in j["subjects"]) == 7292, n
acc = [s["accuracy"] for s in j["subjects"]]
assert acc == sorted(acc), "per-subject table: hardest first"
PY

same() {  # the numbers of two cv.json files (not the timings, threads or the command)
  python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
strip = lambda fs: [{k: v for k, v in f.items() if k not in ("seconds",)} for f in fs]
for k in ("accuracy", "macro_f1", "pooled", "subjects", "subject_accuracy", "folds_done"):
    assert a[k] == b[k], k
assert strip(a["folds"]) == strip(b["folds"]), "per-fold results"
PY
}

# --jobs 2: two worker processes, the same numbers.
$H cv "${TINY[@]}" --folds 3 --jobs 2 --out "$W/jobs" > "$W/jobs.log" 2>&1 || fail "--jobs 2: $(cat "$W/jobs.log")"
grep -q "2 worker processes" "$W/jobs.log" || fail "--jobs 2 did not start workers: $(cat "$W/jobs.log")"
same "$W/one/cv.json" "$W/jobs/cv.json" || fail "--jobs 2 gave other numbers than 1 process"

# Run again: every fold is skipped (its result kept as it was), the report is the same.
before=$(sha256sum "$W/one/fold-02/result.json")
$H cv "${TINY[@]}" --folds 3 --out "$W/one" > "$W/again.log" 2>&1 || fail "second run: $(cat "$W/again.log")"
[ "$(grep -c "done before" "$W/again.log")" = 3 ] || fail "second run did not skip the 3 folds: $(cat "$W/again.log")"
! grep -q "epoch " "$W/again.log" || fail "second run trained again"
[ "$before" = "$(sha256sum "$W/one/fold-02/result.json")" ] || fail "a skipped fold's result changed"
same "$W/one/cv.json" "$W/jobs/cv.json" || fail "the report of the second run differs"
# Other options in the same folder: refused, naming the file.
if $H cv "${TINY[@]}" --folds 3 --lr 1e-3 --only 1 --out "$W/one" > "$W/other.log" 2>&1; then fail "other options reused fold 1"; fi
grep -q "fold-01/result.json: belongs to another cross-validation (options differ)" "$W/other.log" \
  || fail "other-options message: $(cat "$W/other.log")"

# --only: one fold now; the report counts what is done.
$H cv "${TINY[@]}" --folds 3 --only 2 --out "$W/only" > "$W/only.log" 2>&1 || fail "--only 2: $(cat "$W/only.log")"
[ -e "$W/only/fold-02/result.json" ] && [ ! -e "$W/only/fold-01" ] && [ ! -e "$W/only/fold-03" ] \
  || fail "--only 2 ran other folds: $(ls "$W/only")"
grep -q "1 of 3 folds" "$W/only.log" || fail "--only summary: $(cat "$W/only.log")"
grep -q "missing: 1, 3" "$W/only/cv.md" || fail "--only report does not name the missing folds"

# --combine: an ensemble of finished runs of the same folds, nothing trained. Two runs with the same
# numbers (one process, --jobs 2) combine to those numbers; a run with one fold done combines on that
# fold only; other folds, training options, one run, a run named twice, a missing folder, or --out
# equal to a member are refused.
$H cv --data "$W/d.bin" --folds 3 --threads 1 --combine "$W/one,$W/jobs" --out "$W/ens" > "$W/ens.log" 2>&1 \
  || fail "--combine: $(cat "$W/ens.log")"
! grep -q "epoch " "$W/ens.log" || fail "--combine trained: $(cat "$W/ens.log")"
grep -q "3 of 3 folds combined; report: $W/ens/cv.md" "$W/ens.log" || fail "--combine summary: $(cat "$W/ens.log")"
grep -q "^## The ensemble and its members, on the same 3 folds" "$W/ens/cv.md" || fail "--combine: no members table"
grep -q "^| \`$W/jobs\` (vit) |" "$W/ens/cv.md" || fail "--combine: member row"
python3 - "$W/one/cv.json" "$W/ens/cv.json" <<'PY' || fail "--combine of two equal runs is not that run"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for k in ("accuracy", "macro_f1", "pooled", "subjects", "folds_done"):
    assert a[k] == b[k], k
assert [f["best_val_acc"] for f in a["folds"]] == [f["best_val_acc"] for f in b["folds"]]
assert b["options"]["combine"] == [sys.argv[1][:-len("/one/cv.json")] + "/one", sys.argv[1][:-len("/one/cv.json")] + "/jobs"]
PY
# The same ensemble from the folds' predictions files alone (models deleted) and from the models
# alone (predictions files deleted, as in runs made before harvit wrote them).
for r in one jobs; do
  cp -r "$W/$r" "$W/$r-preds" && rm "$W/$r-preds"/fold-0*/best.safetensors
  cp -r "$W/$r" "$W/$r-models" && rm "$W/$r-models"/fold-0*/predictions.safetensors
done
for v in preds models; do
  $H cv --data "$W/d.bin" --folds 3 --threads 1 --combine "$W/one-$v,$W/jobs-$v" --out "$W/ens-$v" > "$W/ens-$v.log" 2>&1 \
    || fail "--combine from $v only: $(cat "$W/ens-$v.log")"
done
python3 - "$W/ens-preds/cv.json" "$W/ens-models/cv.json" <<'PY' || fail "--combine from predictions files differs from the models'"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for k in ("accuracy", "macro_f1", "pooled", "subjects", "folds_done"):
    assert a[k] == b[k], k
assert [f["best_val_acc"] for f in a["folds"]] == [f["best_val_acc"] for f in b["folds"]]
assert len(a["folds"]) == 3
PY
$H cv --data "$W/d.bin" --folds 3 --threads 1 --combine "$W/one,$W/only" --out "$W/ens1" > "$W/ens1.log" 2>&1 \
  || fail "--combine with one fold done: $(cat "$W/ens1.log")"
grep -q "1 of 3 folds combined" "$W/ens1.log" && grep -q "Left out: fold 1, 3 (not finished in every run)" "$W/ens1/cv.md" \
  || fail "--combine with one fold done: $(cat "$W/ens1.log")"
bad_combine() {  # expected message, then the arguments
  local want=$1; shift
  if $H cv --data "$W/d.bin" --threads 1 "$@" > "$W/badc.log" 2>&1; then fail "--combine $*: accepted"; fi
  grep -q -- "$want" "$W/badc.log" || fail "--combine $*: $(cat "$W/badc.log")"
}
bad_combine "fold-01/result.json: another fold than this one (cv, test_subjects" \
  --folds 4 --combine "$W/one,$W/jobs" --out "$W/ens4"
bad_combine "trains nothing, so --lr does not apply" --folds 3 --lr 1e-3 --combine "$W/one,$W/jobs" --out "$W/ens5"
bad_combine "needs two or more cv folders" --folds 3 --combine "$W/one" --out "$W/ens6"
bad_combine "is named twice" --folds 3 --combine "$W/one,$W/one/" --out "$W/ens7"
bad_combine "is not a folder" --folds 3 --combine "$W/one,$W/nowhere" --out "$W/ens8"
bad_combine "is one of the combined runs" --folds 3 --combine "$W/one,$W/jobs" --out "$W/jobs"

# A worker whose fold fails: the command fails naming the fold; the other folds are kept.
mkdir -p "$W/bad/fold-02" && echo '{}' > "$W/bad/fold-02/result.json"
if $H cv "${TINY[@]}" --folds 3 --jobs 2 --out "$W/bad" > "$W/bad.log" 2>&1; then fail "a failing fold passed"; fi
grep -q "fold 2: .*fold-02/result.json: belongs to another cross-validation" "$W/bad.log" || fail "worker message: $(cat "$W/bad.log")"
grep -q "worker 2 (exit status 1) failed on fold 2 (fold 2: .*belongs to another" "$W/bad.log" || fail "parent message: $(cat "$W/bad.log")"
[ -s "$W/bad/fold-01/result.json" ] && [ -s "$W/bad/fold-03/result.json" ] || fail "the folds that finished were not kept"
grep -q "belongs to another" "$W/bad/fold-02/error.txt" || fail "fold-02/error.txt"

# mpirun -np 2: folds over the ranks, results gathered to rank 0, the same numbers.
if [ "$HAVE_MPI" = 1 ]; then
  if [ -z "$MPIRUN" ] || ! command -v "$MPIRUN" > /dev/null; then
    [ "$ci" = 1 ] && fail "harvit was built with MPI but mpirun ('$MPIRUN') is missing"
    echo "cv_cli: mpirun not found: the MPI part is skipped" >&2
  else
    root=(); [ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
    # OpenMPI's own allocations are not freed at exit: no leak report from them in the sanitizer build.
    asan=(); [ "$SANITIZE" = 1 ] && asan=(-x "ASAN_OPTIONS=detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}")
    "$MPIRUN" -np 2 --oversubscribe "${root[@]}" "${asan[@]}" $H cv "${TINY[@]}" --folds 3 --out "$W/mpi" > "$W/mpi.log" 2>&1 \
      || fail "mpirun -np 2: $(cat "$W/mpi.log")"
    grep -q "MPI, 2 ranks" "$W/mpi.log" || fail "mpirun: not spread over 2 ranks: $(cat "$W/mpi.log")"
    [ "$(grep -c "report: " "$W/mpi.log")" = 1 ] || fail "mpirun: not one report (rank 0's): $(cat "$W/mpi.log")"
    same "$W/one/cv.json" "$W/mpi/cv.json" || fail "mpirun -np 2 gave other numbers than 1 process"
    if "$MPIRUN" -np 2 --oversubscribe "${root[@]}" "${asan[@]}" $H cv "${TINY[@]}" --folds 3 --jobs 2 --out "$W/mpij" > "$W/mpij.log" 2>&1; then
      fail "--jobs under mpirun accepted"
    fi
    grep -q "under mpirun the folds are spread over the ranks: drop --jobs" "$W/mpij.log" || fail "mpirun --jobs: $(cat "$W/mpij.log")"
    # A fold that fails on one rank does not end the others' folds: they finish and are kept, and
    # the command fails naming the fold (here fold 2's saved state is garbage).
    mkdir -p "$W/mbad/fold-02" && echo junk > "$W/mbad/fold-02/last.safetensors"
    if "$MPIRUN" -np 2 --oversubscribe "${root[@]}" "${asan[@]}" $H cv "${TINY[@]}" --folds 3 --out "$W/mbad" > "$W/mbad.log" 2>&1; then
      fail "mpirun: a failing fold passed"
    fi
    grep -q "harvit: error: cv: fold 2: .*last.safetensors.*(rank [01]); the folds that finished are kept" "$W/mbad.log" \
      || fail "mpirun: failing fold message: $(cat "$W/mbad.log")"
    [ -s "$W/mbad/fold-01/result.json" ] && [ -s "$W/mbad/fold-03/result.json" ] || fail "mpirun: the other folds were not finished"
    # Run again with the bad state removed: the two folds done are kept, only fold 2 is trained.
    rm "$W/mbad/fold-02/last.safetensors"
    "$MPIRUN" -np 2 --oversubscribe "${root[@]}" "${asan[@]}" $H cv "${TINY[@]}" --folds 3 --out "$W/mbad" > "$W/mbad2.log" 2>&1 \
      || fail "mpirun rerun: $(cat "$W/mbad2.log")"
    grep -q "cv: 2 folds done before (their results kept), 1 to run" "$W/mbad2.log" || fail "mpirun rerun: $(cat "$W/mbad2.log")"
    same "$W/one/cv.json" "$W/mbad/cv.json" || fail "mpirun rerun gave other numbers than 1 process"
  fi
fi

# Bad input: non-zero exit, a message that says what is wrong, no fold trained.
bad() {  # expected-message args...
  local want=$1; shift
  if $H cv "$@" > "$W/err.log" 2>&1; then fail "accepted: $*"; fi
  grep -qF -- "$want" "$W/err.log" || fail "for '$*' expected '$want', got: $(cat "$W/err.log")"
  ! grep -q "epoch " "$W/err.log" || fail "'$*' trained before failing"
}
bad "--folds 1: cross-validation needs at least 2 folds" "${TINY[@]}" --folds 1 --out "$W/e1"
bad "--folds 0: cross-validation needs at least 2 folds" "${TINY[@]}" --folds 0 --out "$W/e2"
bad "--folds 37: more folds than subjects (the data has 36 subjects" "${TINY[@]}" --folds 37 --out "$W/e3"
bad "--folds must be loso or a number of folds, not 'three'" "${TINY[@]}" --folds three --out "$W/e4"
bad "$W/nothing.bin: cannot open" --data "$W/nothing.bin" --folds 3 --epochs 1 --out "$W/e5"
bad "--only 4: fold 4 does not exist (the folds are 1..3)" "${TINY[@]}" --folds 3 --only 4 --out "$W/e6"
bad "--jobs must be at least 1" "${TINY[@]}" --folds 3 --jobs 0 --out "$W/e7"
bad "--val-fraction must be in (0, 1)" "${TINY[@]}" --folds 3 --val-fraction 1 --out "$W/e8"
echo "cv_cli: OK"
