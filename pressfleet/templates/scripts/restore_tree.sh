#!/bin/sh
# List a restored site's files (pressfleet restore checks): every entry of BASE but wp-admin and
# wp-includes as "TYPE SIZE PATH", NUL-terminated; with HASH=1 then "sha256  PATH" of every file
# (sha256sum -z). find -P never follows a link.
# Usage: sh -c "$(cat this)" sh BASE HASH(0|1)
set -eu
base=$1 hash=$2
cd "$base"
find -P . -mindepth 1 \( -path ./wp-admin -o -path ./wp-includes \) -prune -o -printf '%y %s %P\0'
if [ "$hash" = 1 ]; then
  printf 'PRESSFLEET-HASHES\0'
  find -P . -mindepth 1 \( -path ./wp-admin -o -path ./wp-includes \) -prune -o -type f -printf '%P\0' \
    | xargs -0 -r sha256sum -z --
fi
