#!/bin/bash
# Archive the files named on stdin (NUL-separated, relative to BASE) as a zstd-compressed tar on stdout
# (pressfleet backups). Folders are archived without their contents (--no-recursion): the list names
# what is wanted; every name is a name, never an option (--verbatim-files-from). A file that changes or
# vanishes while it is read is a warning, not a failure (GNU tar's status 1): the index keeps only what
# the archive carried. tar archives a link as a link (never what it points to).
# Usage: bash -c "$(cat this)" bash BASE
set -uo pipefail
base=$1
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
tar -C "$base" --no-recursion --verbatim-files-from --null -T - \
  --warning=no-file-changed --warning=no-file-removed -cf - 2>"$errors" \
  | zstd -q -3 -T0 -c
status=("${PIPESTATUS[@]}")
if [ "${status[0]}" -gt 1 ]; then
  # the last line is what an error message shows: say what tar could not read
  echo "tar failed: $(grep -v 'Exiting with failure' "$errors" | head -n 3 | tr '\n' ' ')" >&2
  exit "${status[0]}"
fi
cat "$errors" >&2
exit "${status[1]}"
