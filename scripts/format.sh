#!/usr/bin/env bash
# Formats every C++ source of the repository with .clang-format (clang-format 14, as Debian 12
# ships it). --check: change nothing, list the files that differ and exit 1 if any does.
set -euo pipefail
cd "$(dirname "$0")/.."
clang_format=$(command -v clang-format-14 || command -v clang-format) || {
  echo "scripts/format.sh: clang-format not found (apt-get install clang-format)" >&2
  exit 2
}
mapfile -t files < <(git ls-files '*.hpp' '*.cpp' '*.h' '*.cu' '*.cuh')
if [ "${1:-}" = "--check" ]; then
  status=0
  for f in "${files[@]}"; do
    "$clang_format" "$f" | cmp -s - "$f" || { echo "not formatted: $f"; status=1; }
  done
  [ $status -eq 0 ] && echo "scripts/format.sh: ${#files[@]} files formatted"
  exit $status
fi
"$clang_format" -i "${files[@]}"
