#!/usr/bin/env bash
# Fuzzes rev's file readers with libFuzzer (Clang 16, AddressSanitizer + UBSan): the safetensors
# reader (tests/fuzz/fuzz_safetensors.cpp) and the gzip/IDX reader (tests/fuzz/fuzz_idx.cpp),
# both at once (one core each), from the committed seed corpora, inputs up to 2 MB, 2 GB of
# memory at most. Any crash, leak, sanitizer report, memory-limit breach or non-rev::error
# exception fails the run; the reproducer is left in build-fuzz/ (crash-*, leak-*, oom-*).
#   scripts/fuzz.sh --time SECONDS   each harness runs SECONDS (.ci/run: 60)
#   scripts/fuzz.sh --runs N         each harness runs N inputs (the long run: 1000000)
# Prints each harness's final statistics (runs, coverage "cov", features "ft").
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  --time) limit="-max_total_time=$2" ;;
  --runs) limit="-runs=$2" ;;
  *) echo "usage: scripts/fuzz.sh --time SECONDS | --runs N" >&2; exit 2 ;;
esac
build=build-fuzz
CXX=clang++-16 cmake -S . -B "$build" -G Ninja -DREV_FUZZ=ON -DCMAKE_BUILD_TYPE=None "-DCMAKE_CXX_FLAGS=-O1 -g" \
  -DREV_WERROR=ON -DREV_BUILD_EXAMPLES=OFF -DREV_BUILD_BENCH=OFF -DREV_INSTALL=OFF >/dev/null
harnesses=(fuzz_safetensors fuzz_idx)
cmake --build "$build" --target "${harnesses[@]}"

pids=()
for h in "${harnesses[@]}"; do
  corpus="$build/corpus/${h#fuzz_}"
  mkdir -p "$corpus"
  cp -n tests/fuzz/corpus/"${h#fuzz_}"/* "$corpus"/
  (cd "$build" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "tests/fuzz/$h" "$limit" -max_len=2097152 -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
    "corpus/${h#fuzz_}" >"$h.log" 2>&1) &
  pids+=($!)
done
status=0
for i in "${!harnesses[@]}"; do
  h=${harnesses[$i]}
  if wait "${pids[$i]}"; then
    echo "scripts/fuzz.sh: $h: $(grep -E '^(#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units)' "$build/$h.log" | tail -2 | tr '\n' ' ')"
  else
    status=1
    echo "scripts/fuzz.sh: $h FAILED; its log ($build/$h.log) ends:"
    tail -40 "$build/$h.log"
  fi
done
exit $status
