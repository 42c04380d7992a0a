#!/bin/bash
# Finish a files restore (pressfleet): in STAGING, delete whatever the backup's index does not list
# (the paths on stdin, NUL-separated: later backups of a chain deleted them), then swap each SUBDIR of
# STAGING into LIVE_BASE with two renames; the replaced folder is removed afterwards.
# Usage: bash -c "$(cat this)" bash LIVE_BASE STAGING SUBDIR...
set -euo pipefail
base=$1 staging=$2; shift 2
cd "$staging"
sort -z > .pf-wanted
find . -mindepth 1 -not -name .pf-wanted -printf '%P\0' | sort -z > .pf-present
comm -z -23 .pf-present .pf-wanted | sort -zr | while IFS= read -r -d '' p; do
  if [ -d "$p" ] && [ ! -L "$p" ]; then rmdir "$p" 2>/dev/null || true; else rm -f "$p"; fi
done
rm -f .pf-wanted .pf-present
for sub in "$@"; do
  [ -e "$staging/$sub" ] || mkdir -p "$staging/$sub"
  mkdir -p "$(dirname "$base/$sub")"
  if [ -e "$base/$sub" ]; then rm -rf "$base/$sub.pressfleet-old"; mv "$base/$sub" "$base/$sub.pressfleet-old"; fi
  mv "$staging/$sub" "$base/$sub"
  rm -rf "$base/$sub.pressfleet-old"
done
rm -rf "$staging"
echo "restored $*"
