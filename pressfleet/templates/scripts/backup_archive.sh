#!/bin/bash
# Archive the files named on stdin (NUL-separated, relative to BASE) as a zstd-compressed tar on stdout
# (pressfleet backups). Folders are archived without their contents (--no-recursion): the list names
# what is wanted. A file that changes or vanishes while it is read is a warning, not a failure
# (GNU tar's status 1): the next backup reads it again.
# Usage: bash -c "$(cat this)" bash BASE
set -uo pipefail
base=$1
tar -C "$base" --no-recursion --null -T - --warning=no-file-changed --warning=no-file-removed -cf - \
  | zstd -q -3 -T0 -c
status=("${PIPESTATUS[@]}")
if [ "${status[0]}" -gt 1 ]; then exit "${status[0]}"; fi
exit "${status[1]}"
