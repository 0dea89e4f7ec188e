#!/usr/bin/env bash
# `mpirun -np 2 harvit train` on real data (the bundled WISDM windows), a small model:
#  - one job's output: rank 0 alone prints and writes (one "epoch" line per epoch, one run folder);
#  - --max-steps then --resume across ranks finishes, and the result equals the uninterrupted
#    2-rank run bit for bit (same best checkpoint bytes apart from the command in its metadata);
#  - Ctrl-C (SIGINT to mpirun) saves once and --resume continues;
#  - a rank killed with SIGKILL ends the job (no hang) with mpirun's message;
#  - a rank that fails (missing data file on rank 1 only, other data on rank 1) ends the job with
#    a message naming the rank and the problem, no hang.
# Usage: mpi_cli.sh HARVIT TESTDATA MPIRUN
set -euo pipefail
H=$1
DATA=$2/bundled-wisdm
MPIRUN=$3
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
fail() { echo "mpi_cli: FAILED: $*" >&2; exit 1; }
[ -f "$DATA/wisdm_X.npy" ] || fail "bundled WISDM windows missing: $DATA"
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run2() { timeout 300 "$MPIRUN" -np 2 --oversubscribe --bind-to none "$@"; }

$H prepare --dataset wisdm-npy --data "$DATA" --split subject --seed 1 --out "$W/d.bin" > /dev/null
$H prepare --dataset wisdm-npy --data "$DATA" --split subject --seed 2 --out "$W/other.bin" > /dev/null
small="--D 16 --H 2 --A 8 --L 1 --hidden 32 --batch 64 --epochs 2 --seed 3 --recipe augmented"

run2 $H train --data "$W/d.bin" $small --out "$W/full" > "$W/full.log" 2>&1 || { cat "$W/full.log"; fail "2-rank training"; }
grep -q "2 ranks on 1 machine" "$W/full.log" || fail "the job does not say it runs on 2 ranks"
[ "$(grep -c '^epoch   2/2' "$W/full.log")" = 1 ] || fail "not exactly one report line per epoch (rank 0 alone prints)"
grep -q "allreduce .* ms/step" "$W/full.log" || fail "no allreduce time per step"
for f in best.safetensors last.safetensors history.json; do [ -s "$W/full/$f" ] || fail "missing $f"; done

# stopped after 25 steps, resumed on 2 ranks: the same weights as without the stop
run2 $H train --data "$W/d.bin" $small --out "$W/part" --max-steps 25 > "$W/p1.log" 2>&1 || { cat "$W/p1.log"; fail "max-steps"; }
grep -q "continue with --resume" "$W/p1.log" || fail "stopped run does not say how to resume"
run2 $H train --data "$W/d.bin" $small --out "$W/part" --resume > "$W/p2.log" 2>&1 || { cat "$W/p2.log"; fail "resume"; }
grep -q "resuming from" "$W/p2.log" || fail "resume did not resume"
python3 - "$W/full" "$W/part" <<'PY' || fail "resumed 2-rank run differs from the uninterrupted one"
import json, struct, sys
def tensors(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop("__metadata__", None)
    return {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items()}
import glob
def optim(d):  # the moments' file that last.safetensors names (its name has a nonce): exactly one
    f = glob.glob(d + "/last.optim.*.safetensors")
    assert len(f) == 1, f
    return f[0][len(d) + 1:]
for fa, fb in [(f, f) for f in ("best.safetensors", "last.safetensors")] + [(optim(sys.argv[1]), optim(sys.argv[2]))]:
    a, b = tensors(sys.argv[1] + "/" + fa), tensors(sys.argv[2] + "/" + fb)
    f = fa
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a), f + " differs"
ha, hb = (json.load(open(d + "/history.json")) for d in sys.argv[1:3])
keys = ("train_loss", "train_acc", "val_loss", "val_acc")
assert [[e[k] for k in keys] for e in ha["history"]] == [[e[k] for k in keys] for e in hb["history"]], "history differs"
PY

# Without a longer kill timeout rank 0 says how to let Ctrl-C save (OpenMPI's default of 1 s is
# shorter than a ViT step and a save can take).
grep -q "note: Ctrl-C saves the run only if mpirun waits for it: OpenMPI 4 kills the ranks 1 s after" "$W/p2.log" \
  || { cat "$W/p2.log"; fail "no note about odls_base_sigkill_timeout"; }
# Ctrl-C: mpirun passes it on as SIGTERM (after odls_base_sigkill_timeout seconds, and kills the
# ranks as many seconds later); every rank stops before the same step, rank 0 saves
run2 --mca odls_base_sigkill_timeout 5 $H train --data "$W/d.bin" ${small/--epochs 2/--epochs 30} --out "$W/int" > "$W/i1.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "epoch   1/30" "$W/i1.log" 2>/dev/null && break; sleep 0.2; done
mpirun_pid=$(pgrep -f -- "^$MPIRUN .*--out $W/int" | head -1)
[ -n "$mpirun_pid" ] || fail "mpirun not found"
kill -INT "$mpirun_pid"   # what Ctrl-C in the terminal does
wait $pid && fail "interrupted job exited 0" || true
grep -q "interrupted: saved" "$W/i1.log" || { cat "$W/i1.log"; fail "Ctrl-C did not save"; }
[ "$(grep -c 'interrupted: saved' "$W/i1.log")" = 1 ] || fail "more than one rank reported the save"
! grep -q "note: Ctrl-C" "$W/i1.log" || fail "the kill-timeout note with the timeout set"
run2 $H train --data "$W/d.bin" ${small/--epochs 2/--epochs 30} --out "$W/int" --resume --max-steps 5 > "$W/i2.log" 2>&1 ||
  { cat "$W/i2.log"; fail "resume after Ctrl-C"; }
grep -q "resuming from" "$W/i2.log" || fail "no resume after Ctrl-C"

# a rank killed: the job ends, saying which rank, within the timeout
run2 $H train --data "$W/d.bin" ${small/--epochs 2/--epochs 30} --out "$W/kill" > "$W/k.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "epoch   1/30" "$W/k.log" 2>/dev/null && break; sleep 0.2; done
victim=$(pgrep -f -- "^$H train .*--out $W/kill" | tail -1)
[ -n "$victim" ] || fail "no rank process found"
kill -9 "$victim"
t0=$(date +%s)
wait $pid && fail "job with a killed rank exited 0" || true
[ $(( $(date +%s) - t0 )) -lt 60 ] || fail "job with a killed rank took over 60 s to end"
grep -q "rank 1.*signal 9\|signal 9" "$W/k.log" || { cat "$W/k.log"; fail "no message about the killed rank"; }

# a rank that fails: rank 1 cannot read its data; rank 1 was given other data
out=$(timeout 120 "$MPIRUN" --oversubscribe --bind-to none -np 1 $H train --data "$W/d.bin" $small --out "$W/e1" : \
      -np 1 $H train --data "$W/missing.bin" $small --out "$W/e1" 2>&1) && fail "missing data on rank 1 exited 0"
echo "$out" | grep -q "error on rank 1 of 2: .*missing.bin: cannot open" || { echo "$out"; fail "missing file message"; }
out=$(timeout 120 "$MPIRUN" --oversubscribe --bind-to none -np 1 $H train --data "$W/d.bin" $small --out "$W/e2" : \
      -np 1 $H train --data "$W/other.bin" $small --out "$W/e2" 2>&1) && fail "other data on rank 1 exited 0"
echo "$out" | grep -q "not started on the same data" || { echo "$out"; fail "different data message"; }
# other commands refuse to run N times
out=$(run2 $H eval --model "$W/full/best.safetensors" --data "$W/d.bin" 2>&1) && fail "eval under mpirun exited 0"
echo "$out" | grep -q "harvit eval\` runs in one process" || { echo "$out"; fail "eval under mpirun: no clear refusal"; }
echo "mpi_cli: all checks passed"
