#!/bin/sh
# List a site's files for a backup (pressfleet): its WordPress version, then for every file, link and
# folder of the web root but wp-admin and wp-includes (wp-content, ads.txt, .user.ini, .well-known/...)
# "TYPE SIZE MTIME CTIME PATH", NUL-terminated (paths may hold any byte but NUL). find -P never follows a
# link; which root entries are WordPress core is decided by the caller (pressfleet.backup.index).
# Usage: sh -c "$(cat this)" sh WEB_ROOT
set -eu
root=$1
cd "$root"
version=$(sed -n "s/^\$wp_version = '\(.*\)';/\1/p" wp-includes/version.php)
printf 'version %s\n' "$version"
find -P . -mindepth 1 \( -path ./wp-admin -o -path ./wp-includes \) -prune \
  -o \( -type f -o -type l -o -type d \) -printf '%y %s %T@ %C@ %P\0'
