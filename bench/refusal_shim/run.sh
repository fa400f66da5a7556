#!/bin/bash
# Per-request cost of refusal_log.c's wrappers on the success path (no refusal), in isolation:
# the frontend's two calls into a do-nothing libtritonserver, with and without the preload.
set -e
cd "$(dirname "$0")"
out=$(mktemp -d)
cc -O2 -shared -fPIC -o "$out/libfake.so" fake_tritonserver.c
cc -O2 -o "$out/calls" calls.c -L"$out" -lfake -Wl,-rpath,"$out"
cc -O2 -shared -fPIC -o "$out/refusal_log.so" ../../logging_backend/stack/refusal_log.c -ldl -lpthread
for round in 1 2 3 4 5; do
  echo "round $round without: $("$out/calls")"
  echo "round $round with:    $(LD_PRELOAD="$out/refusal_log.so" STAGELOG_REFUSAL_LOG="$out/r.log" "$out/calls")"
done
test ! -e "$out/r.log" && echo "no refusal, no line written"
rm -rf "$out"
