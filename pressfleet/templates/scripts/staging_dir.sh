#!/bin/sh
# Make a fresh staging folder (pressfleet restores): mktemp -d (mode 0700, owned by root, a name nobody
# could have placed) inside PARENT, which must be a real folder owned by root (no link, nothing the
# site's user could swap), and check that PARENT's file system has NEED bytes free. Prints its path.
# Usage: sh -c "$(cat this)" sh PARENT PREFIX NEED_BYTES
set -eu
parent=$1 prefix=$2 need=$3
case "$prefix" in *[!A-Za-z0-9_.-]*|"") echo "bad staging prefix" >&2; exit 2;; esac
case "$need" in *[!0-9]*|"") echo "bad size" >&2; exit 2;; esac
if [ -L "$parent" ] || [ ! -d "$parent" ] || [ "$(stat -c %u "$parent")" != 0 ]; then
  echo "refusing to stage in $parent: not a folder owned by root" >&2; exit 2
fi
free=$(df -P -B1 --output=avail "$parent" | tail -n 1 | tr -d ' ')
if [ "$free" -lt "$need" ]; then
  echo "not enough space to stage in $parent: $need bytes needed, $free free" >&2; exit 3
fi
mktemp -d "$parent/.$prefix.XXXXXXXX"
