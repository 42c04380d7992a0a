#!/bin/sh
# Install or update a site's WordPress core (pressfleet). Runs as root in a folder whose web root the site's
# user may own (PHP may write everything when "PHP may write only to uploads" is off), so nothing here writes,
# chowns, chmods or removes through a path the site's user controls: new files are staged in a root-owned
# mktemp -d folder inside the site's root-owned folder (same filesystem), fixed up there, and only then
# renamed into place (`mv -T`, which replaces a planted link rather than following it). wp-content is never
# moved or copied: the new core is swapped in around it, entry by entry.
#
# Usage: sh -c "$(cat this)" sh ACTION SITE_USER SITE_DIR ...
#   inspect USER DIR URL SHA256   the recorded release (key=value lines), the installed version, the checksum
#                                 published at URL.sha1 when SHA256 is empty (as wordpress.org publishes it)
#   fetch   USER DIR URL SHA256 SHA1
#                                 the archive into root's cache, verified by SHA256 (or SHA1); prints its
#                                 sha256=, sha1=, version=, db_version=
#   apply   USER DIR URL SHA256 WRITABLE(uploads|all)
#                                 installs the cached archive SHA256: a fresh web root, or new core around
#                                 wp-content under WordPress's maintenance mode; records the release
#   finish  USER DIR              ends the maintenance mode apply started (after wp_upgrade() ran)
#   install USER DIR URL SHA256 WRITABLE
#                                 fetch then apply, no questions (a scratch copy, e.g. restore-test's); also
#                                 what the arguments of earlier versions (no ACTION) mean
set -euf  # no globbing: every name below is checked against a strict class first
case "$1" in inspect|fetch|apply|finish|install) ;; *) set -- install "$@";; esac
action=$1 user=$2 dir=$3
docroot="$dir/htdocs"
marker="$dir/.pressfleet-release"
cache=/var/cache/pressfleet
hex() { case "$1" in *[!0-9a-f]*|"") return 1;; esac; }
fail() { echo "$*" >&2; exit 3; }
# The site's folder is root's (root:SITE 0750): the one place above the web root the site's user cannot change.
if [ "$action" = install ] && [ ! -e "$dir" ] && [ ! -L "$dir" ]; then mkdir -m 0755 "$dir"; fi
[ -d "$dir" ] && [ ! -L "$dir" ] && [ "$(stat -c %U "$dir")" = root ] || fail "$dir must be a root-owned folder"

archive_version() {  # VAR from the archive's wp-includes/version.php (read from the archive, never from the site)
  tar -xzOf "$1" --wildcards '*/wp-includes/version.php' 2>/dev/null | sed -n "s/^\$$2 = '*\([0-9A-Za-z.-]*\)'*;.*/\1/p" | head -n1
}

do_fetch() {  # URL SHA256 SHA1
  url=$1 sha256=$2 sha1=$3
  mkdir -p "$cache"; chmod 700 "$cache"
  if [ -n "$sha256" ]; then algo=sha256 want=$sha256; found="$cache/wordpress-$sha256.tar.gz"
  else algo=sha1 want=$sha1; found="$cache/sha1-$sha1.tar.gz"; fi
  hex "$want" || fail "no checksum to verify $url against"
  if ! { [ -f "$found" ] && echo "$want  $found" | ${algo}sum -c --status 2>/dev/null; }; then
    part=$(mktemp "$cache/download.XXXXXX")
    trap 'rm -f "$part"' EXIT
    curl -fsS --retry 3 --max-time 600 -o "$part" "$url" || fail "could not download $url"
    if ! echo "$want  $part" | ${algo}sum -c --status; then
      fail "checksum mismatch for $url: expected $algo $want, got $(${algo}sum "$part" | cut -d' ' -f1)"
    fi
    found="$cache/wordpress-$(sha256sum "$part" | cut -d' ' -f1).tar.gz"
    mv -fT "$part" "$found"
    trap - EXIT
  fi
  s256=$(sha256sum "$found" | cut -d' ' -f1) s1=$(sha1sum "$found" | cut -d' ' -f1)
  # a link, not mv: the archive found by its sha1 name (an unpinned site) may already be the sha256 name's file
  # (a pinned site of the same release on this host), and mv refuses two names of one file
  [ "$found" = "$cache/wordpress-$s256.tar.gz" ] || ln -f "$found" "$cache/wordpress-$s256.tar.gz"
  ln -f "$cache/wordpress-$s256.tar.gz" "$cache/sha1-$s1.tar.gz"
  version=$(archive_version "$cache/wordpress-$s256.tar.gz" wp_version)
  [ -n "$version" ] || fail "$url is not a WordPress release archive (no wp-includes/version.php)"
  echo "sha256=$s256"; echo "sha1=$s1"; echo "version=$version"
  echo "db_version=$(archive_version "$cache/wordpress-$s256.tar.gz" wp_db_version)"
  fetched_sha256=$s256
}

do_apply() {  # URL SHA256 WRITABLE
  url=$1 sha256=$2 writable=$3
  hex "$sha256" || fail "apply needs the archive's sha256"
  archive="$cache/wordpress-$sha256.tar.gz"
  echo "$sha256  $archive" | sha256sum -c --status || fail "the cached archive $archive is missing or corrupt"
  stage=$(mktemp -d "$dir/.pressfleet-stage.XXXXXX")  # 0700 root: out of the site user's reach
  trap 'rm -rf "$stage"' EXIT
  mkdir "$stage/new" "$stage/old"
  tar -xzf "$archive" -C "$stage/new" --strip-components=1 --no-same-owner --no-same-permissions
  version=$(archive_version "$archive" wp_version)
  entries=$(cd "$stage/new" && ls -A | grep -vx wp-content | tr '\n' ' ')
  for e in $entries; do case "$e" in *[!A-Za-z0-9._-]*|.|..) fail "unexpected entry '$e' in $url";; esac; done
  mkdir -p "$stage/new/wp-content/uploads" "$stage/new/wp-content/mu-plugins"
  chown -hR "root:$user" "$stage/new"
  find -P "$stage/new" -type d -exec chmod 0750 {} +
  find -P "$stage/new" -type f -exec chmod 0640 {} +
  if [ "$writable" = all ]; then chown -hR "$user:$user" "$stage/new"; else chown -hR "$user:$user" "$stage/new/wp-content/uploads"; fi
  if [ ! -e "$docroot" ] && [ ! -L "$docroot" ]; then
    mv -T "$stage/new" "$docroot"
    result="installed $version"
  else
    [ -d "$docroot" ] && [ ! -L "$docroot" ] || fail "$docroot is not a folder"
    before=$(runuser -u "$user" -- sed -n "s/^\$wp_version = '\([0-9A-Za-z.-]*\)';.*/\1/p" "$docroot/wp-includes/version.php" 2>/dev/null || true)
    # WordPress's own maintenance mode while core changes ("briefly unavailable"; it expires by itself after
    # 10 minutes should this run be cut off); `finish` ends it once wp_upgrade() has run.
    printf '<?php $upgrading = %s; // pressfleet core update\n' "$(date +%s)" > "$stage/maintenance"
    chown -h "root:$user" "$stage/maintenance"; chmod 0640 "$stage/maintenance"
    mv -fT "$stage/maintenance" "$docroot/.maintenance"
    # core entries of this release, and those of the release recorded before that this one no longer has
    previous=$(sed -n 's/^entries=//p' "$marker" 2>/dev/null || true)
    all=$entries
    for e in $previous; do case " $entries " in *" $e "*) ;; *) all="$all $e";; esac; done
    for e in $all; do
      case "$e" in *[!A-Za-z0-9._-]*|.|..|wp-content|.maintenance) continue;; esac
      live="$docroot/$e"
      if [ -e "$stage/new/$e" ] && [ -f "$stage/new/$e" ] && ! { [ -d "$live" ] && [ ! -L "$live" ]; }; then
        mv -fT "$stage/new/$e" "$live"  # a file: one atomic rename over the old one (or over a planted link)
        continue
      fi
      if { [ -e "$live" ] || [ -L "$live" ]; } && [ ! -e "$stage/old/$e" ]; then mv -T "$live" "$stage/old/$e"; fi
      if [ -e "$stage/new/$e" ]; then mv -T "$stage/new/$e" "$live"; fi
    done
    if [ ! -e "$docroot/wp-content" ] && [ ! -L "$docroot/wp-content" ]; then mv -T "$stage/new/wp-content" "$docroot/wp-content"; fi
    result="updated ${before:-unknown} -> $version"
  fi
  printf 'url=%s\nsha256=%s\nsha1=%s\nversion=%s\nentries=%s\n' "$url" "$sha256" \
    "$(sha1sum "$archive" | cut -d' ' -f1)" "$version" "$entries" > "$stage/marker"
  chmod 0600 "$stage/marker"
  mv -fT "$stage/marker" "$marker"
  echo "$result"
  trap - EXIT; rm -rf "$stage"
}

case "$action" in
inspect)
  url=$4 pin=$5
  if [ -f "$marker" ] && [ ! -L "$marker" ]; then sed 's/^/recorded./' "$marker"; fi
  if [ -f "$docroot/wp-includes/version.php" ]; then
    # read as the site's user: root never opens a file the site may have swapped for a link
    v=$(runuser -u "$user" -- sed -n "s/^\$wp_version = '\([0-9A-Za-z.-]*\)';.*/\1/p" "$docroot/wp-includes/version.php" || true)
    echo "installed=${v:-unknown}"
  fi
  if [ -f "$docroot/.maintenance" ] && [ ! -L "$docroot/.maintenance" ] && [ "$(stat -c %U "$docroot/.maintenance")" = root ]; then
    echo "maintenance=pressfleet"
  fi
  if [ -z "$pin" ]; then
    sha1=$(curl -fsS --retry 3 --max-time 60 "$url.sha1" | cut -c1-40) || sha1=""
    hex "$sha1" || fail "no usable sha1 published at $url.sha1: pin the archive's sha256 on the site block"
    echo "published.sha1=$sha1"
  fi
  ;;
fetch)
  do_fetch "$4" "$5" "$6"
  ;;
apply)
  do_apply "$4" "$5" "$6"
  ;;
install)
  url=$4 pin=$5
  sha1=""
  if [ -z "$pin" ]; then
    sha1=$(curl -fsS --retry 3 --max-time 60 "$url.sha1" | cut -c1-40) || sha1=""
    hex "$sha1" || fail "no usable sha1 published at $url.sha1"
  fi
  do_fetch "$url" "$pin" "$sha1" > /dev/null
  do_apply "$url" "$fetched_sha256" "$6"
  ;;
finish)
  # unlink never follows a link; a folder the site made there is left alone
  if [ -f "$docroot/.maintenance" ] || [ -L "$docroot/.maintenance" ]; then rm -f "$docroot/.maintenance"; echo ended; fi
  ;;
*) fail "unknown action $action";;
esac
