#!/usr/bin/env bash
# `harvit stream` on real recordings: a CSV of the bundled WISDM windows (from a file and from
# standard input, same bytes), WISDM 2019 raw text of two users (a change of user restarts the
# recogniser), a UCI-HAPT acc/gyro file pair (6 axes); decision counts from the sample counts;
# output that appears while the input is still open (read line by line, flushed per decision);
# JSON lines; and clear errors naming file:line for bad input.
#   tests/stream_cli.sh HARVIT TESTDATA SOURCE_DIR
set -euo pipefail
H=$1 TD=$2 SRC=$3
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
fail() { echo "stream_cli: FAILED: $*" >&2; exit 1; }
DATA=$TD/bundled-wisdm
[ -f "$DATA/wisdm_X.npy" ] || fail "bundled WISDM windows missing: $DATA"
case "${CI:-}" in ""|0|false|False|FALSE) ci=0 ;; *) ci=1 ;; esac

# a small 3-axis checkpoint (axes x, y, z) trained for 20 steps on the bundled windows
$H prepare --dataset wisdm-npy --data "$DATA" --split subject --test-subjects 26,27,28,29,30,31,32,33,34,35 \
   --val-fraction 0.15 --seed 1 --out "$W/d.bin" > /dev/null
$H train --data "$W/d.bin" --D 32 --H 2 --A 16 --hidden 64 --batch 64 --epochs 1 --seed 3 --max-steps 20 \
   --out "$W/run" > /dev/null
M=$W/run/last.safetensors
python3 "$SRC/tests/e2e_values.py" windows-csv "$DATA" 26 "$W/w.csv" > /dev/null
awk -F, 'NR==1{print "t,x,y,z"; next} {printf "%d,%s,%s,%s\n", (NR-2)*50, $2, $3, $4}' "$W/w.csv" > "$W/rec.csv"
n=$(($(wc -l < "$W/rec.csv") - 1))

# CSV: one decision per hop once a window is full: (n - 128) / 64 + 1
$H stream --model "$M" --input "$W/rec.csv" --csv-time t > "$W/file.csv" 2> "$W/file.log" || fail "stream: $(cat "$W/file.log")"
want=$(( (n - 128) / 64 + 1 ))
[ "$(($(wc -l < "$W/file.csv") - 1))" = "$want" ] || fail "CSV: $(($(wc -l < "$W/file.csv") - 1)) decisions, expected $want from $n samples"
head -1 "$W/file.csv" | grep -qx "end,time_ns,label,confidence,hop_label,hop_confidence,changed,p_Downstairs,p_Jogging,p_Sitting,p_Standing,p_Upstairs,p_Walking" \
  || fail "CSV header: $(head -1 "$W/file.csv")"
sed -n 2p "$W/file.csv" | grep -Eq '^128,6350000000,[A-Za-z]+,[01]\.[0-9]{4},[A-Za-z]+,[01]\.[0-9]{4},1(,[01]\.[0-9]{4}){6}$' \
  || fail "first decision: $(sed -n 2p "$W/file.csv")"
grep -q "stream: $n samples, $want decisions (window 128, hop 64, mean over 1), 1 recording" "$W/file.log" || fail "summary: $(cat "$W/file.log")"
# standard input gives the same bytes
$H stream --model "$M" --input - --csv-time t < "$W/rec.csv" > "$W/stdin.csv" 2>/dev/null || fail "stream from stdin"
cmp "$W/file.csv" "$W/stdin.csv" || fail "stdin output differs from the file's"
# JSON lines: one valid object per decision, same labels
$H stream --model "$M" --input "$W/rec.csv" --format jsonl > "$W/out.jsonl" 2>/dev/null || fail "jsonl"
python3 - "$W/out.jsonl" "$W/file.csv" <<'EOF' || fail "jsonl does not match the CSV"
import csv, json, sys
js = [json.loads(l) for l in open(sys.argv[1])]
rows = list(csv.DictReader(open(sys.argv[2])))
assert len(js) == len(rows), (len(js), len(rows))
for j, r in zip(js, rows):
    assert j["end"] == int(r["end"]) and j["label"] == r["label"] and "%.4f" % j["confidence"] == r["confidence"], (j, r)
    assert j["time_ns"] is None and abs(sum(j["probs"].values()) - 1) < 2e-3, j
EOF
# int8, smoothing options
$H stream --model "$M" --input "$W/rec.csv" --precision int8 --smooth 4 --method vote --hysteresis 2 --hop 32 \
   > "$W/int8.csv" 2>/dev/null || fail "int8 vote"
[ "$(($(wc -l < "$W/int8.csv") - 1))" = "$(( (n - 128) / 32 + 1 ))" ] || fail "hop 32: $(wc -l < "$W/int8.csv") lines"

# Incremental: decisions come out while the input is still open (a FIFO held open by this shell).
mkfifo "$W/fifo"
$H stream --model "$M" --input - < "$W/fifo" > "$W/live.csv" 2>/dev/null &
exec 3> "$W/fifo"
head -n 301 "$W/rec.csv" >&3  # header + 300 samples: decisions at 128, 192, 256
for _ in $(seq 1 100); do [ "$(wc -l < "$W/live.csv")" -ge 4 ] && break; sleep 0.1; done
[ "$(wc -l < "$W/live.csv")" = 4 ] || fail "with 300 samples written and the input open, $(wc -l < "$W/live.csv") lines came out (expected 4)"
exec 3>&-
wait
$H stream --model "$M" --input "$W/rec.csv" > "$W/notime_all.csv" 2>/dev/null
head -n 4 "$W/notime_all.csv" > "$W/notime.csv"
cmp "$W/live.csv" "$W/notime.csv" || fail "live output differs from the file's"

# WISDM 2019 raw text, two users: the recogniser restarts at the change of user
WR=$TD/wisdm-2019-phone-accel-partial/raw/phone/accel
if [ -f "$WR/data_1609_accel_phone.txt" ]; then
  { head -n 3000 "$WR/data_1609_accel_phone.txt"; head -n 2000 "$WR/data_1611_accel_phone.txt"; } > "$W/two_users.txt"
  $H stream --model "$M" --input "$W/two_users.txt" > "$W/wisdm.csv" 2> "$W/wisdm.log" || fail "wisdm: $(cat "$W/wisdm.log")"
  want=$(( (3000 - 128) / 64 + 1 + (2000 - 128) / 64 + 1 ))
  grep -q "stream: 5000 samples, $want decisions .* 2 recordings" "$W/wisdm.log" || fail "wisdm summary: $(cat "$W/wisdm.log")"
  # the second user's first decision: 128 samples after the change, with its own timestamp, a new label
  t=$(sed -n 3128p "$W/two_users.txt" | cut -d, -f3)
  grep -Eq "^3128,$t,[A-Za-z]+,[^,]*,[^,]*,[^,]*,1," "$W/wisdm.csv" || fail "second user's first decision (end 3128, time $t, changed) missing"
elif [ "$ci" = 1 ]; then fail "WISDM 2019 raw data missing under CI"; fi

# UCI-HAPT: acc file given, gyro beside it, 6 axes; a 6-axis checkpoint trained on a CSV here
HR="$TD/uci-hapt/HAPT Dataset/RawData"
if [ -f "$HR/acc_exp01_user01.txt" ]; then
  awk 'BEGIN{print "user,act,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z"; srand(1)
             for (u = 1; u <= 4; u++) for (a = 0; a < 2; a++) for (i = 0; i < 300; i++)
               printf "%d,%s,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f\n", u, a ? "Sitting" : "Walking", sin(i*(a+1)/5), rand(), 1, rand(), 0, a}' > "$W/six.csv"
  $H prepare --dataset csv --data "$W/six.csv" --csv-subject user --csv-label act \
     --csv-axes acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z --window 128 --stride 64 --split subject --test-subjects 4 \
     --val-subjects 3 --out "$W/six.bin" > /dev/null
  $H train --data "$W/six.bin" --D 16 --H 2 --A 8 --hidden 32 --L 1 --batch 8 --epochs 1 --max-steps 3 --out "$W/six" > /dev/null
  rows=$(grep -c . "$HR/acc_exp01_user01.txt")
  $H stream --model "$W/six/last.safetensors" --input "$HR/acc_exp01_user01.txt" > "$W/hapt.csv" 2> "$W/hapt.log" \
    || fail "hapt: $(cat "$W/hapt.log")"
  grep -q "stream: $rows samples, $(( (rows - 128) / 64 + 1 )) decisions" "$W/hapt.log" || fail "hapt summary: $(cat "$W/hapt.log")"
  head -1 "$W/hapt.csv" | grep -q "p_Sitting,p_Walking$" || fail "hapt header: $(head -1 "$W/hapt.csv")"
  # a gyro file shorter than its acc file
  mkdir -p "$W/hapt"
  head -n 300 "$HR/acc_exp01_user01.txt" > "$W/hapt/acc_exp99_user99.txt"
  head -n 250 "$HR/gyro_exp01_user01.txt" > "$W/hapt/gyro_exp99_user99.txt"
  if $H stream --model "$W/six/last.safetensors" --input "$W/hapt/acc_exp99_user99.txt" > /dev/null 2> "$W/err.log"; then
    fail "short gyro file accepted"; fi
  grep -q "harvit: error: .*gyro_exp99_user99.txt: ends after line 250, .*acc_exp99_user99.txt has a row at line 251" "$W/err.log" \
    || fail "short gyro message: $(cat "$W/err.log")"
  # the 3-axis model refuses 6-axis input
  if $H stream --model "$M" --input "$HR/acc_exp01_user01.txt" > /dev/null 2> "$W/err.log"; then fail "3-axis model on HAPT"; fi
  grep -q "HAPT recordings have 6 axes (acc_x..gyro_z), the model reads 3" "$W/err.log" || fail "axes message: $(cat "$W/err.log")"
elif [ "$ci" = 1 ]; then fail "UCI-HAPT raw data missing under CI"; fi

# Bad input: exit 1, "harvit: error: FILE:LINE: problem", and the decisions before it already out
bad() {  # expected message (grep -E), harvit stream arguments...
  local want=$1; shift
  set +e; $H stream --model "$M" "$@" > "$W/bad_out.csv" 2> "$W/err.log"; local rc=$?; set -e
  [ $rc = 1 ] || fail "exit code $rc, expected 1, for $*: $(cat "$W/err.log")"
  grep -Eq "^harvit: error: $want" "$W/err.log" || fail "message for $*: $(cat "$W/err.log") (expected $want)"
}
{ head -n 300 "$W/rec.csv"; echo "15000,0.1,abc,0.3"; } > "$W/bad.csv"
bad ".*bad.csv:301: 'abc' in column 'y' is not a number" --input "$W/bad.csv"
[ "$(wc -l < "$W/bad_out.csv")" = 4 ] || fail "decisions before the bad line not written ($(wc -l < "$W/bad_out.csv") lines)"
{ head -n 5 "$W/rec.csv"; echo "300,0.1,0.2"; } > "$W/short.csv"
bad ".*short.csv:6: 3 columns, the header has 4" --input "$W/short.csv"
bad ".*nope.csv: no such file" --input "$W/nope.csv"
bad ".*rec.csv:1: no column named 'q' in the header \(columns: t, x, y, z\)" --input "$W/rec.csv" --csv-axes x,y,q
bad "--csv-axes names 2 columns, the model reads 3 axes \(x,y,z\)" --input "$W/rec.csv" --csv-axes x,y
bad "smooth must be at least 1 hop, got 0" --input "$W/rec.csv" --smooth 0
bad "unknown smoothing \"median\"" --input "$W/rec.csv" --method median
bad "streaming runs fp32 or int8, not \"bf16\"" --input "$W/rec.csv" --precision bf16
{ echo "t,x,y,z"; echo "0,1,2,inf"; } > "$W/inf.csv"
bad ".*inf.csv:2: non-finite value in column 'z'" --input "$W/inf.csv"
# a header without the model's axes: the first three numeric columns, said on stderr
sed '1s/.*/t,a,b,c/' "$W/rec.csv" > "$W/abc.csv"
$H stream --model "$M" --input "$W/abc.csv" > "$W/abc_out.csv" 2> "$W/abc.log" || fail "abc.csv: $(cat "$W/abc.log")"
grep -q "reading columns t,a,b" "$W/abc.log" || fail "column choice not said: $(cat "$W/abc.log")"
$H stream --model "$M" --input "$W/abc.csv" --csv-time t > "$W/abc_out.csv" 2> "$W/abc.log" || fail "abc.csv with time"
grep -q "reading columns a,b,c" "$W/abc.log" || fail "column choice with --csv-time: $(cat "$W/abc.log")"
cmp "$W/abc_out.csv" "$W/file.csv" || fail "abc.csv (a,b,c = x,y,z) differs from rec.csv's output"
echo "stream_cli: passed (CSV of $n samples from a file, stdin and a live FIFO; jsonl; int8; WISDM raw; HAPT; errors)"
