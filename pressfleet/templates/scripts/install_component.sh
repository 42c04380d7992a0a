#!/bin/sh
# Install or update one plugin or theme of a site from a verified archive (pressfleet). Runs as root. The site's
# user may own wp-content (PHP may write everywhere when "PHP may write only to uploads" is off), so nothing
# here writes through a path that user controls: the archive is unpacked in a root-owned mktemp -d folder inside
# the site's root-owned folder, fixed up there, and swapped in for wp-content/KIND/SLUG in one rename
# (safe_files.py swapin: an exchange through folder descriptors; a link planted there is swapped out, never
# followed). The old folder ends up in the stage and is removed with it.
#
# Usage: sh -c "$(cat this)" sh ACTION USER DIR KIND SLUG ...
#   fetch  USER DIR KIND SLUG URL SHA256        the archive into root's cache, verified by SHA256
#   apply  USER DIR KIND SLUG SHA256 WRITABLE   the cached archive in place of wp-content/KIND/SLUG; prints
#                                               `replaced VERSION` or `added VERSION`
# KIND is plugins or themes; WRITABLE is uploads or all (who owns the new files, as for core).
# apply reads safe_files.py's text on standard input.
set -euf
action=$1 user=$2 dir=$3 kind=$4 slug=$5
cache=/var/cache/pressfleet/components
fail() { echo "$*" >&2; exit 3; }
hex() { case "$1" in *[!0-9a-f]*|"") return 1;; esac; [ "${#1}" -eq 64 ]; }
case "$kind" in plugins|themes) ;; *) fail "unknown component kind $kind";; esac
case "$slug" in *[!a-z0-9_-]*|"") fail "unexpected slug '$slug'";; esac
[ -d "$dir" ] && [ ! -L "$dir" ] && [ "$(stat -c %U "$dir")" = root ] || fail "$dir must be a root-owned folder"

case "$action" in
fetch)
  url=$6 sha256=$7
  hex "$sha256" || fail "no sha256 to verify $url against"
  mkdir -p "$cache"; chmod 700 "$cache"
  found="$cache/$sha256.zip"
  if ! { [ -f "$found" ] && echo "$sha256  $found" | sha256sum -c --status 2>/dev/null; }; then
    part=$(mktemp "$cache/download.XXXXXX")
    trap 'rm -f "$part"' EXIT
    curl -fsS --retry 3 --max-time 600 -o "$part" "$url" || fail "could not download $url"
    echo "$sha256  $part" | sha256sum -c --status ||
      fail "checksum mismatch for $url: expected sha256 $sha256, got $(sha256sum "$part" | cut -d' ' -f1)"
    mv -fT "$part" "$found"
    trap - EXIT
  fi
  echo fetched
  ;;
apply)
  sha256=$6 writable=$7
  hex "$sha256" || fail "apply needs the archive's sha256"
  archive="$cache/$sha256.zip"
  echo "$sha256  $archive" | sha256sum -c --status || fail "the cached archive $archive is missing or corrupt"
  stage=$(mktemp -d "$dir/.pressfleet-stage.XXXXXX")  # 0700 root: out of the site user's reach
  trap 'rm -rf "$stage"' EXIT
  # Python's zipfile leaves out absolute names and '..' and writes links as plain files
  python3 -m zipfile -e "$archive" "$stage/unpacked" >/dev/null 2>&1 || fail "$archive is not a zip archive"
  top=$(cd "$stage/unpacked" && ls -A)
  [ "$top" = "$slug" ] && [ -d "$stage/unpacked/$slug" ] || fail "the archive holds '$top', not one folder named $slug"
  new="$stage/unpacked/$slug"
  if [ "$kind" = themes ]; then header="$new/style.css"
  else header=$(find -P "$new" -maxdepth 1 -type f -name '*.php' -exec grep -l '^[ 	/*#@]*Plugin Name:' {} + 2>/dev/null | head -n1 || true); fi
  version=$(sed -n 's/^[ 	/*#@]*Version:[ 	]*\([0-9][0-9A-Za-z.-]*\).*/\1/p' "${header:-/dev/null}" 2>/dev/null | head -n1)
  [ -n "$version" ] || fail "the archive's $slug has no version header: not a WordPress ${kind%s}"
  chown -hR "root:$user" "$new"
  find -P "$new" -type d -exec chmod 0750 {} +
  find -P "$new" -type f -exec chmod 0640 {} +
  if [ "$writable" = all ]; then chown -hR "$user:$user" "$new"; fi
  parent="$dir/htdocs/wp-content/$kind"
  safe=$(cat)
  how=$(python3 -c "$safe" swapin "$parent" "$slug" "$new")
  echo "$how $version"
  ;;
*) fail "unknown action $action";;
esac
