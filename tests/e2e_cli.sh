#!/usr/bin/env bash
# End to end through the CLI on real data (the bundled WISDM windows): prepare -> train ->
# resume -> eval -> report, plus clean failures on bad input (non-zero exit, message naming the
# file, no partial output). Values are checked, not only strings (tests/e2e_values.py): the short
# training's test accuracy, the printed table against eval.json and its confusion matrix,
# `predict` on the test windows written as a raw recording (same confusion matrix as eval: same
# windows, same normalisation), and int8's agreement with fp32 on the trained model.
set -euo pipefail
H=$1
DATA=$2/bundled-wisdm
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "e2e: FAILED: $*" >&2; exit 1; }
V="python3 $(dirname "$0")/e2e_values.py"
# The bundled windows are part of the repository (unpacked by unpack_datasets.sh): never a skip.
[ -f "$DATA/wisdm_X.npy" ] || fail "bundled WISDM windows missing: $DATA (tests/unpack_datasets.sh unpacks them)"

$H info | grep -q "4,367,366" || fail "info does not report 4,367,366 parameters"
$H prepare --dataset wisdm-npy --data "$DATA" --split subject --test-subjects 26,27,28,29,30,31,32,33,34,35 \
   --val-fraction 0.15 --seed 1 --out "$W/d.bin" > "$W/prep.log"
grep -q "subjects in test: 10" "$W/prep.log" || fail "prepare summary"
# A small model, 2 epochs, stopped after 30 steps and resumed.
small="--D 32 --H 2 --A 16 --hidden 64 --batch 64 --epochs 2 --seed 3"
$H train --data "$W/d.bin" $small --out "$W/run" --max-steps 30 > "$W/t1.log"
grep -q "continue with --resume" "$W/t1.log" || fail "interrupted training did not say how to resume"
$H train --data "$W/d.bin" $small --out "$W/run" --resume > "$W/t2.log"
grep -q "best validation accuracy" "$W/t2.log" || fail "resumed training did not finish"
$H eval --model "$W/run/best.safetensors" --data "$W/d.bin" --latency-windows 100 > "$W/eval.log"
grep -q "Test accuracy" "$W/eval.log" || fail "eval table"
# 2 epochs of the small model (seed 3, 2 threads): test accuracy 0.6744 (seeds 1-5: 0.674-0.727);
# 6 classes, uniform chance 0.167, majority class (Walking) 0.384 of the 2125 test windows.
$V eval "$W/run/eval.json" "$W/eval.log" 0.55 || fail "eval values"
for f in report.md eval.json confusion_matrix.png curves.png; do [ -s "$W/run/$f" ] || fail "missing $f"; done
head -c 8 "$W/run/curves.png" | od -An -c | grep -q "P   N   G" || fail "curves.png is not a PNG"
for f in curves.png confusion_matrix.png; do  # decoded: CRCs, inflated size, not blank
  python3 "$(dirname "$0")/png_check.py" "$W/run/$f" 400 300 || fail "$f does not decode"
done
# int8 inference: the table states the precision and the fp32 accuracy beside it
$H eval --model "$W/run/best.safetensors" --data "$W/d.bin" --precision int8 --latency-windows 50 --out "$W/int8" > "$W/eval8.log"
grep -q "Precision of the arithmetic *| int8" "$W/eval8.log" || fail "int8 eval table"
grep -q "labels equal to fp32's" "$W/eval8.log" || fail "int8 eval: no comparison with fp32"
grep -q '"precision": "int8"' "$W/int8/eval.json" || fail "int8 eval.json"
# On this trained model int8 labels equal fp32's on 0.9854 of the test windows (2 epochs, seeds
# 1-5: 0.985-0.997; 5 epochs: 0.975-0.996). The README's 99.96 % is the full seed model's.
$V int8 "$W/int8/eval.json" "$W/eval8.log" "$W/run/eval.json" 0.97 || fail "int8 agreement"
$V eval "$W/int8/eval.json" "$W/eval8.log" 0.55 || fail "int8 eval values"

# predict on the test split's windows (subjects 26-35) written as a raw CSV recording, each
# subject's windows back to back, cut with stride 128: exactly the windows eval scored.
$V windows-csv "$DATA" 26,27,28,29,30,31,32,33,34,35 "$W/test.csv" > /dev/null
for p in fp32 int8; do
  $H predict --model "$W/run/best.safetensors" --input "$W/test.csv" --csv-subject user --csv-axes ax,ay,az \
     --csv-label act --stride 128 --precision $p --out "$W/pred_$p.csv" 2> "$W/pred_$p.log" || fail "predict $p: $(cat "$W/pred_$p.log")"
done
$V predict "$W/run/eval.json" "$W/pred_fp32.csv" "$W/test.csv.json" || fail "predict (fp32) does not label the test windows as eval does"
$V predict "$W/int8/eval.json" "$W/pred_int8.csv" "$W/test.csv.json" || fail "predict (int8) does not label the test windows as eval does"
$V agree "$W/pred_fp32.csv" "$W/pred_int8.csv" "$W/int8/eval.json" || fail "predict int8/fp32 agreement"

# predict: a CSV recording of two subjects, 300 and 200 samples -> (300-128)/64+1 + (200-128)/64+1 = 3 + 2 windows.
{ echo "user,t,ax,ay,az,act"
  for i in $(seq 0 299); do echo "1,$((i*50)),0.$((i%10)),1.$((i%7)),-0.5,Walking"; done
  for i in $(seq 0 199); do echo "2,$((i*50)),0.1,0.2,0.$((i%5)),Sitting"; done; } > "$W/rec.csv"
$H predict --model "$W/run/best.safetensors" --input "$W/rec.csv" --csv-subject user --csv-time t \
   --csv-axes ax,ay,az --csv-label act --out "$W/pred.csv" 2> "$W/pred.log"
[ "$(wc -l < "$W/pred.csv")" = 6 ] || fail "predict wrote $(wc -l < "$W/pred.csv") lines, expected 1 + 5"
grep -q "accuracy on the 5 labelled windows" "$W/pred.log" || fail "predict summary: $(cat "$W/pred.log")"
head -1 "$W/pred.csv" | grep -q "p_Walking" || fail "predict header"
$H predict --model "$W/run/best.safetensors" --input "$W/rec.csv" --csv-axes ax,ay,az --output jsonl 2>/dev/null | head -1 \
  | grep -q '"predicted"' || fail "predict jsonl"
$H predict --model "$W/run/best.safetensors" --input "$W/rec.csv" --csv-axes ax,ay,az --precision int8 2>/dev/null \
  | wc -l | grep -qx 7 || fail "predict --precision int8"  # one stream: (500-128)/64+1 = 6 windows + header

# Bad input: non-zero exit, the file named, nothing written.
if $H prepare --dataset wisdm --data "$W/nope.txt" --out "$W/x.bin" 2> "$W/err.log"; then fail "missing file accepted"; fi
grep -q "nope.txt: no such file" "$W/err.log" || fail "missing-file message: $(cat "$W/err.log")"
printf '1,Walking,100,1,2,3;\n1,Flying,150,1,2,3;\n' > "$W/bad.txt"
if $H prepare --dataset wisdm --data "$W/bad.txt" --out "$W/x.bin" 2> "$W/err.log"; then fail "unknown activity accepted"; fi
grep -q "'Flying' x 1 (first at .*bad.txt:2)" "$W/err.log" || fail "unknown-activity message: $(cat "$W/err.log")"
[ ! -e "$W/x.bin" ] || fail "partial output left behind"
head -c 100 "$W/d.bin" > "$W/cut.bin"
if $H train --data "$W/cut.bin" --out "$W/r2" 2> "$W/err.log"; then fail "truncated dataset accepted"; fi
grep -q "cut.bin" "$W/err.log" || fail "truncated-dataset message"
echo "e2e OK"
