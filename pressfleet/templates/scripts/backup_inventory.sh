#!/bin/sh
# List a site's wp-content for a backup (pressfleet): its WordPress version, then for every file,
# link and folder "TYPE SIZE MTIME CTIME PATH", NUL-terminated (paths may hold any byte but NUL).
# Usage: sh -c "$(cat this)" sh WEB_ROOT
set -eu
root=$1
cd "$root"
version=$(sed -n "s/^\$wp_version = '\(.*\)';/\1/p" wp-includes/version.php)
printf 'version %s\n' "$version"
find wp-content \( -type f -o -type l -o -type d \) -printf '%y %s %T@ %C@ %p\0'
