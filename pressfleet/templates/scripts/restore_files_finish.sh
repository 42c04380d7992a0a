#!/bin/bash
# Finish a files restore (pressfleet): in TREE (a root-only staging folder), delete whatever the
# backup's index does not list (the paths on stdin, NUL-separated), then swap each NAME of TREE into
# LIVE_BASE: a folder with two renames (the replaced one removed afterwards), a file or link with one.
# No link is followed: LIVE_BASE and each NAME's parents must be real folders, and every rename is
# `mv -T` (a link the site's user placed at a name is replaced, never written through).
# Usage: bash -c "$(cat this)" bash LIVE_BASE TREE NAME...
set -euo pipefail
base=$1 tree=$2; shift 2
real_dir() { [ -d "$1" ] && [ ! -L "$1" ]; }
real_dir "$base" || { echo "refusing to restore into $base: not a folder (or a symbolic link)" >&2; exit 2; }
cd "$tree"
list=$(mktemp -d)
trap 'rm -rf "$list"' EXIT
sort -z > "$list/wanted"
find -P . -mindepth 1 -printf '%P\0' | sort -z > "$list/present"
comm -z -23 "$list/present" "$list/wanted" | sort -zr | while IFS= read -r -d '' p; do
  if [ -d "$p" ] && [ ! -L "$p" ]; then rmdir -- "$p" 2>/dev/null || true; else rm -f -- "$p"; fi
done
canon=$(realpath -e -- "$base")
for sub in "$@"; do
  case "/$sub/" in */../*|*/./*|//) echo "bad name $sub" >&2; exit 2;; esac
  parent=$base want=$canon
  rest=$(dirname -- "$sub") name=$(basename -- "$sub")
  if [ "$rest" != . ]; then
    IFS=/ read -r -a parts <<< "$rest"
    for part in "${parts[@]}"; do
      parent="$parent/$part" want="$want/$part"
      if [ -L "$parent" ]; then echo "refusing to restore $sub: $parent is a symbolic link" >&2; exit 2; fi
      [ -d "$parent" ] || mkdir -- "$parent"
    done
  fi
  # Every rename goes through the opened folder (/proc/self/fd/3), never through its path again: a link
  # swapped in on the way after the check above cannot redirect a rename.
  exec 3< "$parent"
  if [ "$(readlink /proc/self/fd/3)" != "$want" ]; then
    echo "refusing to restore $sub: $parent is not the folder it was a moment ago" >&2; exit 2
  fi
  live="/proc/self/fd/3/$name" old="/proc/self/fd/3/$name.pressfleet-old"
  if [ ! -e "$tree/$sub" ] && [ ! -L "$tree/$sub" ]; then mkdir -p -- "$tree/$sub"; fi
  if real_dir "$tree/$sub" || real_dir "$live"; then
    rm -rf -- "$old"
    if [ -e "$live" ] || [ -L "$live" ]; then mv -T -- "$live" "$old"; fi
    mv -T -- "$tree/$sub" "$live"
    rm -rf -- "$old"
  else
    mv -T -- "$tree/$sub" "$live"   # one rename: the file (or link) is replaced atomically
  fi
  exec 3<&-
done
echo "restored $*"
