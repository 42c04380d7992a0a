#!/bin/sh
# Stage one shipped binary log (zstd on stdin) as FILE for point-in-time recovery (pressfleet), on disk in
# a root-only staging folder: refuses when its file system has less than NEED bytes free, checks the
# staged size against SIZE (empty: unknown) and the binary-log magic number, and prints
# "created EPOCH": the timestamp of the log's first event (when MariaDB opened it).
# Usage: sh -c "$(cat this)" sh FILE NEED SIZE
set -eu
f=$1 need=$2 size=$3
free=$(df -P -B1 --output=avail "$(dirname -- "$f")" | tail -n 1 | tr -d ' ')
if [ "$free" -lt "$need" ]; then
  echo "not enough space to stage binary log $(basename -- "$f"): $need bytes needed, $free free" >&2; exit 3
fi
set -C   # noclobber: the file is created, never written through something already there
zstd -q -dc > "$f"
got=$(stat -c %s -- "$f")
if [ -n "$size" ] && [ "$got" != "$size" ]; then
  echo "binary log $(basename -- "$f") staged with $got bytes, $size expected" >&2; exit 3
fi
if [ "$(head -c 4 -- "$f" | od -An -tx1 | tr -d ' \n')" != fe62696e ]; then
  echo "$(basename -- "$f") is not a binary log (no magic number)" >&2; exit 3
fi
set -- $(head -c 8 -- "$f" | od -An -tu1 -j4)
echo "created $(( $1 + $2 * 256 + $3 * 65536 + $4 * 16777216 ))"
