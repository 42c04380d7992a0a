#!/bin/bash
# Extract a zstd-compressed tar from stdin into TREE (pressfleet restores), owners kept by name.
# With MEMBERS (a file of NUL-separated paths), only those members are taken, each a literal name;
# then every symbolic link in TREE must be one LINKS names (the index's own links): a link an archive
# carried where the index has a folder is refused before the next archive could be written through it.
# TREE is inside a root-only staging folder (staging_dir.sh), so nothing else writes there meanwhile.
# Usage: bash -c "$(cat this)" bash TREE [MEMBERS LINKS]
set -euo pipefail
tree=$1 members=${2:-} links=${3:-}
if [ -L "$tree" ]; then echo "refusing to extract into $tree: it is a symbolic link" >&2; exit 2; fi
mkdir -p -- "$tree"
if [ -z "$members" ]; then
  zstd -q -dc | tar -C "$tree" -xpf - --same-owner
  exit 0
fi
zstd -q -dc | tar -C "$tree" -xpf - --same-owner --no-wildcards --no-recursion --verbatim-files-from \
  --null -T "$members"
unexpected=$(cd "$tree" && find -P . -type l -printf '%P\0' | sort -z | comm -z -23 - <(sort -z "$links") \
  | tr '\0' '\n' | head -n 3)
if [ -n "$unexpected" ]; then
  echo "the archive carried a symbolic link the index does not list: $unexpected" >&2; exit 4
fi
