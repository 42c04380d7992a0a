#!/bin/sh
# Releases of a site's plugin or theme deployed from its repository (pressfleet deploy). Runs as root.
# Each release is a folder DIR/releases/KIND-SLUG/ID, root's own with the site's group (PHP reads it, never
# writes it; the site user cannot change DIR or anything under it, so nothing root does here goes through a
# link PHP could have planted). DIR/releases/KIND-SLUG/current names the live release; wp-content/KIND/SLUG is
# a link to that `current` (both links are made by safe_files.py, one rename each).
#
# Usage: sh -c "$(cat this)" sh ACTION USER DIR KIND SLUG [ID...]
#   list          `current ID` (or `current -`), `link TARGET` (or `link absent` / `link folder`), `release ID`...
#   components    `KIND-SLUG` of every component deployed this way
#   receive ID    a tar on standard input becomes release ID; prints `received ID FILES`
#   remove ID...  these releases deleted (never the current one); prints `removed ID` each
set -euf
action=$1 user=$2 dir=$3 kind=$4 slug=$5; shift 5
fail() { echo "$*" >&2; exit 3; }
idok() { printf '%s' "$1" | grep -Eqx '[0-9]{8}T[0-9]{6}Z-[0-9a-f]{12}(-[0-9]+)?'; }
case "$kind" in plugins|themes) ;; *) fail "unknown component kind $kind";; esac
case "$slug" in *[!a-z0-9_-]*|"") fail "unexpected slug '$slug'";; esac
[ -d "$dir" ] && [ ! -L "$dir" ] && [ "$(stat -c %U "$dir")" = root ] || fail "$dir must be a root-owned folder"
base="$dir/releases/$kind-$slug"
current() { if [ -L "$base/current" ]; then basename "$(readlink "$base/current")"; fi; }

case "$action" in
list)
  now=$(current); echo "current ${now:--}"
  link="$dir/htdocs/wp-content/$kind/$slug"
  if [ -L "$link" ]; then echo "link $(readlink "$link")"; elif [ -e "$link" ]; then echo "link folder"; else echo "link absent"; fi
  if [ -d "$base" ]; then find -P "$base" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf 'release %f\n' | sort; fi
  ;;
components)
  if [ -d "$dir/releases" ]; then find -P "$dir/releases" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort; fi
  ;;
receive)
  id=$1
  idok "$id" || fail "unexpected release id '$id'"
  [ ! -e "$base/$id" ] || fail "release $id is already on the host"
  for d in "$dir/releases" "$base"; do
    [ ! -L "$d" ] || fail "$d is a link: nothing was changed"
    mkdir -p "$d"; chown -h "root:$user" "$d"; chmod 0750 "$d"
  done
  stage=$(mktemp -d "$base/.incoming.XXXXXX")
  trap 'rm -rf "$stage"' EXIT
  # owners and modes from the tar are ignored: root's files, the site's group, read-only to it
  tar -x --no-same-owner --no-same-permissions -C "$stage" -f - || fail "the release's files could not be unpacked (a full disk?)"
  files=$(find -P "$stage" -type f | wc -l)
  chown -hR "root:$user" "$stage"
  find -P "$stage" -type d -exec chmod 0750 {} +
  find -P "$stage" -type f -exec chmod 0640 {} +
  mv -T "$stage" "$base/$id"
  trap - EXIT
  echo "received $id $files"
  ;;
remove)
  now=$(current)
  for id in "$@"; do
    idok "$id" || fail "unexpected release id '$id'"
    [ "$id" != "$now" ] || fail "release $id is the current one: it stays"
    if [ -d "$base/$id" ]; then rm -rf -- "$base/$id"; echo "removed $id"; fi
  done
  ;;
*) fail "unknown action $action";;
esac
