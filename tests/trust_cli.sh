#!/usr/bin/env bash
# `harvit calibrate`, `harvit openset`, and "unknown" from predict and stream, through the CLI on
# the real HAPT recordings: a small ViT trained briefly on the 6 basic activities; calibrate fits
# a temperature and a threshold on validation into a copy of the checkpoint (the original is left
# as it was) and draws its pictures; openset scores the postural transitions (never trained on)
# against the known test windows; the calibrated checkpoint makes predict and stream say
# "unknown", --reject 0 turns that off; bad arguments fail clearly.
set -euo pipefail
H=$1
DATA=$2/uci-hapt
PY=${3:-python3}  # Debian's (tests/CMakeLists.txt: HARVIT_PYTHON3), where python3-onnx installs
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "trust_cli: FAILED: $*" >&2; exit 1; }
[ -d "$DATA/HAPT Dataset/RawData" ] || fail "HAPT raw data missing: $DATA (tests/unpack_datasets.sh unpacks it)"

split="--split subject --test-subjects 2,4,9,10,12,13,18,20,24 --val-fraction 0.2 --seed 0"
$H prepare --dataset hapt --data "$DATA" $split --out "$W/h6.bin" > /dev/null
$H prepare --dataset hapt --data "$DATA" --transitions $split --out "$W/h12.bin" > /dev/null
$H train --data "$W/h6.bin" --P 8 --D 32 --H 2 --A 16 --L 2 --hidden 64 --epochs 2 --seed 1 --out "$W/vit" > /dev/null
sum=$(sha256sum "$W/vit/best.safetensors")

$H calibrate --model "$W/vit/best.safetensors" --data "$W/h6.bin" --out "$W/cal.safetensors" --report "$W/rep" \
  > "$W/cal.log" || fail "calibrate: $(cat "$W/cal.log")"
grep -q "^temperature [0-9.]* (fitted on 1319 validation windows" "$W/cal.log" || fail "calibrate output: $(cat "$W/cal.log")"
grep -q "^test (2996 windows): ECE" "$W/cal.log" || fail "no test ECE: $(cat "$W/cal.log")"
[ "$(sha256sum "$W/vit/best.safetensors")" = "$sum" ] || fail "calibrate --out changed the input checkpoint"
for f in reliability.png risk_coverage.png calibration.json; do [ -s "$W/rep/$f" ] || fail "$f missing"; done
"$PY" - "$W/rep/calibration.json" "$W/cal.safetensors" <<'PY' || fail "calibration.json / metadata"
import json, struct, sys
j = json.load(open(sys.argv[1]))
assert 0.05 < j["temperature"] < 20 and 0 <= j["threshold"] <= 1, j
assert j["val"]["windows"] == 1319 and j["test"]["windows"] == 2996
# ECE after temperature scaling on the validation split it was fitted on is not worse
assert j["val"]["after"]["nll"] <= j["val"]["before"]["nll"] + 1e-9, j["val"]
f = open(sys.argv[2], "rb"); n = struct.unpack("<Q", f.read(8))[0]
meta = json.loads(f.read(n))["__metadata__"]
cal = json.loads(meta["extra"])["calibration"] if "extra" in meta else None
assert cal and abs(cal["temperature"] - j["temperature"]) < 1e-9 and cal["fitted_on"] == "validation", meta.keys()
PY

$H openset --model "$W/cal.safetensors" --data "$W/h6.bin" --unknown "$W/h12.bin" --out "$W/os" > "$W/os.log" \
  || fail "openset: $(cat "$W/os.log")"
grep -q "^2996 known test windows, 166 unknown" "$W/os.log" || fail "openset counts: $(cat "$W/os.log")"
for s in "max softmax" energy "kNN distance" Mahalanobis; do grep -q "^$s" "$W/os.log" || fail "no $s row"; done
"$PY" -c "
import json,sys; j=json.load(open('$W/os/openset.json'))
for k,v in j['scores'].items(): assert 0<=v['auroc']<=1 and 0<=v['detection_at_coverage']<=1, (k,v)
assert j['unknown_classes']['Stand-to-lie']==49, j['unknown_classes']" || fail "openset.json"

# a threshold of 1 makes everything unknown; --reject 0 turns rejection off
"$PY" - "$W/cal.safetensors" "$W/all_unknown.safetensors" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); extra = json.loads(h["__metadata__"]["extra"])
extra["calibration"]["threshold"] = 1.0; h["__metadata__"]["extra"] = json.dumps(extra)
hb = json.dumps(h).encode(); hb += b" " * ((8 - len(hb) % 8) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
acc="$DATA/HAPT Dataset/RawData/acc_exp01_user01.txt"
$H stream --model "$W/all_unknown.safetensors" --input-format hapt --input "$acc" > "$W/s1.csv" 2> /dev/null || fail "stream"
[ "$(tail -n +2 "$W/s1.csv" | cut -d, -f3 | sort -u)" = "unknown" ] || fail "stream with threshold 1: labels $(tail -n +2 "$W/s1.csv" | cut -d, -f3 | sort -u | tr '\n' ' ')"
$H stream --model "$W/all_unknown.safetensors" --input-format hapt --input "$acc" --reject 0 > "$W/s2.csv" 2> /dev/null
! tail -n +2 "$W/s2.csv" | cut -d, -f3 | grep -q unknown || fail "--reject 0 still says unknown"
$H predict --model "$W/all_unknown.safetensors" --input "$DATA" > "$W/p.csv" 2> "$W/p.log" || fail "predict: $(cat "$W/p.log")"
[ "$(tail -n +2 "$W/p.csv" | cut -d, -f5 | sort -u)" = "unknown" ] || fail "predict with threshold 1"
grep -q 'below the calibrated threshold ("unknown")' "$W/p.log" || fail "predict summary: $(cat "$W/p.log")"

# ONNX export of a calibrated checkpoint: probabilities = softmax(logits / T), the threshold in the metadata
if "$PY" -c "import onnx" 2> /dev/null && $H export --model "$W/cal.safetensors" --out "$W/cal.onnx" > /dev/null 2>&1; then
  "$PY" - "$W/cal.onnx" "$W/rep/calibration.json" <<'PY' || fail "calibrated ONNX export"
import json, sys, onnx
m = onnx.load(sys.argv[1]); j = json.load(open(sys.argv[2]))
meta = {p.key: p.value for p in m.metadata_props}
cal = json.loads(meta["calibration"])
assert abs(cal["temperature"] - j["temperature"]) < 1e-9 and abs(cal["threshold"] - j["threshold"]) < 1e-6, cal
div = [n for n in m.graph.node if n.output and n.output[0] == "calibration/scaled"]
sm = [n for n in m.graph.node if n.output and n.output[0] == "probabilities"]
assert div and div[0].op_type == "Div" and sm[0].input[0] == "calibration/scaled", (div, sm)
PY
elif [ "${CI:-}" = true ]; then
  fail "python3-onnx or harvit export missing under CI"
fi

# harvit replay on one test subject's raw recordings, sample by sample (docs/results/hapt-stream.md)
$H replay --model "$W/cal.safetensors" --data "$DATA" --subjects 2 --precision int8 --smooth 3 --out "$W/rp" \
  > "$W/rp.log" 2>&1 || fail "replay: $(cat "$W/rp.log")"
[ -s "$W/rp/timeline.png" ] && [ -s "$W/rp/replay.md" ] || fail "replay outputs: $(ls "$W/rp")"
"$PY" - "$W/rp/replay.json" <<'PY' || fail "replay.json"
import json, sys
j = json.load(open(sys.argv[1]))
def find(o, key):
    if isinstance(o, dict):
        if key in o: return o[key]
        for v in o.values():
            r = find(v, key)
            if r is not None: return r
    return None
acc = find(j, "accuracy")
assert acc is not None and 0.2 < acc <= 1, acc  # 2 epochs of a small ViT: far better than chance (1/6)
PY
! $H replay --model "$W/cal.safetensors" --data "$DATA" --subjects 99 > "$W/e.log" 2>&1 || fail "replay of a missing subject accepted"

# errors
! $H calibrate --model "$W/vit/best.safetensors" --data "$W/h6.bin" --coverage 0 > "$W/e.log" 2>&1 || fail "coverage 0 accepted"
! $H openset --model "$W/cal.safetensors" --data "$W/h6.bin" --unknown "$W/h6.bin" > "$W/e.log" 2>&1 || fail "no unknowns accepted"
grep -q "has no window of a class the model does not know" "$W/e.log" || fail "openset error: $(cat "$W/e.log")"
echo "trust_cli: ok"
