#!/usr/bin/env bash
# `harvit explain` through the CLI on the bundled WISDM windows: a small ViT trained for one epoch,
# pictures for windows chosen by index, by the most confident errors and per class (decoded by
# png_check.py, named in explain.json with maps that are distributions), and clear failures: an
# index outside the split, nothing chosen, a CNN checkpoint - non-zero exit, no picture written.
set -euo pipefail
H=$1
DATA=$2/bundled-wisdm
HERE=$(dirname "$0")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "explain_cli: FAILED: $*" >&2; exit 1; }
[ -f "$DATA/wisdm_X.npy" ] || fail "bundled WISDM windows missing: $DATA (tests/unpack_datasets.sh unpacks them)"

$H prepare --dataset wisdm-npy --data "$DATA" --split given --seed 0 --out "$W/d.bin" > /dev/null
$H train --data "$W/d.bin" --D 32 --H 2 --A 16 --hidden 64 --epochs 1 --seed 1 --out "$W/vit" > /dev/null
$H train --data "$W/d.bin" --model cnn --channels 8 --epochs 1 --seed 1 --out "$W/cnn" > /dev/null

$H explain --model "$W/vit/best.safetensors" --data "$W/d.bin" --index 0 --index 2560 --errors 2 --per-class 1 \
   --out "$W/ex" > "$W/ex.log" || fail "explain: $(cat "$W/ex.log")"
grep -q "wrote 10 pictures" "$W/ex.log" || fail "expected 2 + 2 + 6 pictures: $(cat "$W/ex.log")"
[ "$(ls "$W/ex"/*.png | wc -l)" = 10 ] || fail "PNG count: $(ls "$W/ex")"
for f in "$W/ex"/*.png; do python3 "$HERE/png_check.py" "$f" 800 500 || fail "$f does not decode"; done
[ -s "$W/ex/test_02560_index.png" ] || fail "the last test window's picture is missing"
python3 - "$W/ex/explain.json" <<'PY' || fail "explain.json"
import json, sys, os
j = json.load(open(sys.argv[1]))
w = j["windows"]
assert [x["why"] for x in w] == ["index"] * 2 + ["error"] * 2 + ["class"] * 6, [x["why"] for x in w]
assert [x["split_index"] for x in w[:2]] == [0, 2560]
errs = [x for x in w if x["why"] == "error"]
assert all(x["predicted"] != x["true"] for x in errs) and errs[0]["probability"] >= errs[1]["probability"]
cls = [x for x in w if x["why"] == "class"]
assert sorted(x["true"] for x in cls) == sorted(j["classes"])  # correct ones first, else the class's best
cfg = j["config"]
for x in w:
    assert os.path.exists(x["png"]), x["png"]
    assert len(x["rollout"]) == cfg["M"] * (cfg["T"] // cfg["P"])
    for m in range(cfg["M"]):
        n = cfg["T"] // cfg["P"]
        assert abs(sum(x["rollout"][m * n:(m + 1) * n]) - 1) < 1e-4
PY

# failures: exit status, a message that says what is wrong, no picture
if $H explain --model "$W/vit/best.safetensors" --data "$W/d.bin" --index 2561 --out "$W/bad" 2> "$W/err.log"; then
  fail "index 2561 of 2561 test windows accepted"
fi
grep -q "index 2561 is outside the test split, which has 2561 windows (indices 0..2560)" "$W/err.log" \
  || fail "bad-index message: $(cat "$W/err.log")"
if $H explain --model "$W/vit/best.safetensors" --data "$W/d.bin" --out "$W/bad" 2> "$W/err.log"; then
  fail "nothing to explain accepted"
fi
grep -q "nothing to explain" "$W/err.log" || fail "nothing-chosen message: $(cat "$W/err.log")"
if $H explain --model "$W/cnn/best.safetensors" --data "$W/d.bin" --index 0 --out "$W/bad" 2> "$W/err.log"; then
  fail "a CNN checkpoint accepted"
fi
grep -q "explain needs a ViT: .*cnn/best.safetensors holds a cnn model" "$W/err.log" || fail "CNN message: $(cat "$W/err.log")"
[ ! -e "$W/bad" ] || fail "a failed explain left output behind"
echo "explain_cli: OK"
