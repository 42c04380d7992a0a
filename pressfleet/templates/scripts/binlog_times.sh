#!/bin/sh
# Times of a staged binary log (pressfleet point-in-time recovery), UTC: "created EPOCH" (the timestamp
# of its first event, the format description written when the log was opened) and, with LAST=1,
# "last YYMMDD HH:MM:SS" (its newest dated event: a closed log ends with its rotate event).
# Usage: sh -c "$(cat this)" sh FILE LAST(0|1)
set -eu
f=$1 last=$2
if [ -L "$f" ] || [ ! -f "$f" ]; then echo "$f is not a staged binary log" >&2; exit 2; fi
magic=$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')
if [ "$magic" != fe62696e ]; then echo "$f is not a binary log (no magic number)" >&2; exit 3; fi
set -- $(head -c 8 "$f" | od -An -tu1 -j4)
echo "created $(( $1 + $2 * 256 + $3 * 65536 + $4 * 16777216 ))"
if [ "$last" = 1 ]; then
  TZ=UTC mariadb-binlog --base64-output=decode-rows "$f" 2>/dev/null \
    | sed -n 's/^#\([0-9]\{6\} [ 0-9][0-9]:[0-9][0-9]:[0-9][0-9]\) server id.*/last \1/p' | tail -n 1
fi
