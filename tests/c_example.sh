#!/usr/bin/env bash
# The installed C library as a user gets it: `cmake --install` into a temporary prefix, then
# examples/stream_file.c compiled by the C compiler (cc, not c++) against that prefix through
# pkg-config - once with the shared library, once with the static one - and through a 5-line CMake
# consumer (find_package(harvit)); each streams a CSV made from real data (subjects 26 and 27 of
# the bundled WISDM windows, 48,000 samples) through a small checkpoint trained here, and must
# print exactly the bytes `harvit stream --format csv` prints on that file. Also: the shared
# library's soname and that it exports the C API only; the header compiles as strict C99.
#   tests/c_example.sh HARVIT BUILD_DIR TESTDATA SOURCE_DIR [SANITIZED: 1 = skip]
set -euo pipefail
H=$1 B=$2 DATA=$3/bundled-wisdm SRC=$4
if [ "${5:-0}" = 1 ]; then
  echo "c_example: skipped in the sanitizer build (its libharvit needs the sanitizer runtimes loaded before it)"
  exit 77
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "c_example: FAILED: $*" >&2; exit 1; }
[ -f "$DATA/wisdm_X.npy" ] || fail "bundled WISDM windows missing: $DATA (tests/unpack_datasets.sh unpacks them)"
command -v pkg-config >/dev/null || fail "pkg-config not installed (scripts/deps.sh installs it)"

# 1. install
cmake --install "$B" --prefix "$W/prefix" > "$W/install.log" || fail "cmake --install: $(cat "$W/install.log")"
export PKG_CONFIG_PATH="$W/prefix/lib/pkgconfig"
[ "$(pkg-config --modversion harvit)" = "$(sed -n 's/^project(harvit VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")" ] \
  || fail "harvit.pc version $(pkg-config --modversion harvit) is not the project's"
LIBDIR=$(pkg-config --variable=libdir harvit)
[ -f "$LIBDIR/libharvit.a" ] || fail "libharvit.a not installed"
[ "$(readelf -d "$LIBDIR/libharvit.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')" = libharvit.so.0 ] \
  || fail "soname is not libharvit.so.0: $(readelf -d "$LIBDIR/libharvit.so" | grep SONAME)"
# only the C API leaves the shared library (the version node HARVIT_0 is listed as an absolute symbol)
others=$(nm -D --defined-only "$LIBDIR/libharvit.so" | awk '$3 !~ /^harvit_/ && $3 != "HARVIT_0" {print $3}')
[ -z "$others" ] || fail "libharvit.so exports more than the C API: $(echo "$others" | head -5)"
nm -D --defined-only "$LIBDIR/libharvit.so" | grep -q " harvit_open@@HARVIT_0" || fail "harvit_open not exported"

# 2. the header as strict C99, and the example built with cc through pkg-config
printf '#include <harvit/harvit.h>\nint main(void) { return harvit_version()[0] != 0x30; }\n' > "$W/hdr.c"
cc -std=c99 -Wall -Wextra -pedantic -Werror -c "$W/hdr.c" -o "$W/hdr.o" $(pkg-config --cflags harvit) || fail "header is not C99"
CFLAGS="-std=c99 -Wall -Wextra -pedantic -Werror"
cc $CFLAGS "$SRC/examples/stream_file.c" -o "$W/ex_shared" $(pkg-config --cflags --libs harvit) -lm -Wl,-rpath,"$LIBDIR" \
  || fail "example does not build against the shared library"
readelf -d "$W/ex_shared" | grep -q "NEEDED.*libharvit.so.0" || fail "ex_shared does not load libharvit.so.0"
# static: the same pkg-config line with --static, libharvit.a named instead of -lharvit
cc $CFLAGS "$SRC/examples/stream_file.c" -o "$W/ex_static" $(pkg-config --cflags harvit) \
   $(pkg-config --static --libs harvit | sed 's/-lharvit\b/-l:libharvit.a/') -lm \
  || fail "example does not build against the static library"
if readelf -d "$W/ex_static" | grep -q "libharvit"; then fail "ex_static loads libharvit.so"; fi

# 3. a small checkpoint (the e2e test's model shape, 20 steps) and a CSV recording from real data
$H prepare --dataset wisdm-npy --data "$DATA" --split subject --test-subjects 26,27,28,29,30,31,32,33,34,35 \
   --val-fraction 0.15 --seed 1 --out "$W/d.bin" > "$W/prep.log" || fail "prepare: $(cat "$W/prep.log")"
$H train --data "$W/d.bin" --D 32 --H 2 --A 16 --hidden 64 --batch 64 --epochs 1 --seed 3 --max-steps 20 \
   --out "$W/run" > "$W/train.log" || fail "train: $(cat "$W/train.log")"
M=$W/run/last.safetensors
python3 "$SRC/tests/e2e_values.py" windows-csv "$DATA" 26,27 "$W/w.csv" > /dev/null
# columns t (ms, 20 Hz), x, y, z (the checkpoint's axis names), act
awk -F, 'NR==1{print "t,x,y,z,act"; next} {printf "%d,%s,%s,%s,%s\n", (NR-2)*50, $2, $3, $4, $5}' "$W/w.csv" > "$W/rec.csv"
[ "$(wc -l < "$W/rec.csv")" = 48001 ] || fail "rec.csv has $(wc -l < "$W/rec.csv") lines, expected 48001"

# 4. the same bytes as harvit stream, with the defaults and with timestamps, hop and smoothing
check() {  # name, harvit stream options, example options
  $H stream --model "$M" --input "$W/rec.csv" $2 > "$W/cli_$1.csv" 2> "$W/cli_$1.log" || fail "harvit stream $2: $(cat "$W/cli_$1.log")"
  [ "$(wc -l < "$W/cli_$1.csv")" -gt 100 ] || fail "harvit stream $2 wrote $(wc -l < "$W/cli_$1.csv") lines"
  for ex in ex_shared ex_static; do
    "$W/$ex" "$M" "$W/rec.csv" $3 > "$W/${ex}_$1.csv" || fail "$ex $3 failed"
    cmp "$W/cli_$1.csv" "$W/${ex}_$1.csv" || fail "$ex $3 differs from harvit stream $2"
  done
  echo "c_example: $1: $(($(wc -l < "$W/cli_$1.csv") - 1)) decisions, shared and static library output equal to harvit stream's"
}
check default "" ""
check timed "--csv-time t --hop 32 --smooth 3" "--time t --hop 32 --smooth 3"
# the timestamps arrive: 20 Hz rows, t in ms; the first window ends at sample 128 = 6.35 s
sed -n 2p "$W/cli_timed.csv" | grep -q "^128,6350000000," || fail "first timed decision: $(sed -n 2p "$W/cli_timed.csv")"

# 5. find_package(harvit) from a C project (shared) and a C/C++ project (static)
for kind in shared static; do
  mkdir -p "$W/consumer_$kind"
  cp "$SRC/examples/stream_file.c" "$W/consumer_$kind/"
  if [ $kind = shared ]; then langs=C target=harvit::harvit; else langs="C CXX" target=harvit::harvit_static; fi
  cat > "$W/consumer_$kind/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.25)
project(consumer $langs)
find_package(harvit 0.1 REQUIRED)
add_executable(stream_file stream_file.c)
target_link_libraries(stream_file PRIVATE $target m)
EOF
  cmake -S "$W/consumer_$kind" -B "$W/consumer_$kind/build" -DCMAKE_PREFIX_PATH="$W/prefix" > "$W/consumer.log" 2>&1 \
    || fail "find_package(harvit) ($kind): $(cat "$W/consumer.log")"
  cmake --build "$W/consumer_$kind/build" > "$W/consumer.log" 2>&1 || fail "consumer build ($kind): $(cat "$W/consumer.log")"
  "$W/consumer_$kind/build/stream_file" "$M" "$W/rec.csv" > "$W/consumer_$kind.csv" || fail "consumer ($kind) failed"
  cmp "$W/cli_default.csv" "$W/consumer_$kind.csv" || fail "CMake consumer ($kind) differs from harvit stream"
done
echo "c_example: find_package(harvit) consumers (harvit::harvit, harvit::harvit_static) equal to harvit stream"
