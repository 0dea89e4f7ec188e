#!/bin/sh
# The objects of the ISA-specific kernels (harvit_isa, one instruction set each) must define no
# weak or unique symbols: such a symbol (an inline function or template instantiated there) is
# compiled for that ISA, and the linker may keep that copy for callers on every CPU.
# usage: check_isa_objects.sh LIST_FILE (one object path per line)
set -eu
bad=0
while IFS= read -r obj; do
  [ -n "$obj" ] || continue
  # DW.ref.__gxx_personality_v0 (emitted where a function has exception cleanups, as under the
  # sanitizers) is a data word pointing at the C++ personality routine, no ISA code: allowed.
  weak=$(nm -C --defined-only "$obj" | awk '$2 ~ /^[WVu]$/ && $3 !~ /^DW\.ref\./' || true)
  if [ -n "$weak" ]; then
    echo "$obj defines weak symbols:"
    echo "$weak"
    bad=1
  else
    echo "$obj: no weak symbols ($(nm --defined-only "$obj" | awk '$2 ~ /^[TtDdRrBb]$/' | wc -l) defined)"
  fi
done < "$1"
exit $bad
