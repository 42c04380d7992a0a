#!/bin/sh
# Install a WordPress release into a site's folder, verified by sha256 (pressfleet).
# Usage: sh -c "$(cat this)" sh SITE_USER SITE_DIR URL SHA256 WRITABLE(uploads|all)
# SHA256 empty: the sha1 published beside the archive (URL.sha1, as wordpress.org does) is checked instead.
# Prints "unchanged" or "installed <version>". Re-runnable: a cut-off run leaves the previous release in service.
set -eu
user=$1 dir=$2 url=$3 sha=$4 writable=$5
docroot="$dir/htdocs"
marker="$dir/.pressfleet-release"
if [ -n "$sha" ]; then algo=sha256; else
  algo=sha1; sha=$(curl -fsS --retry 3 --max-time 60 "$url.sha1" | cut -c1-40)
  case "$sha" in *[!0-9a-f]*|"") echo "no usable sha1 published at $url.sha1" >&2; exit 3;; esac
fi
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$algo:$sha" ] && [ -f "$docroot/wp-includes/version.php" ]; then
  echo unchanged; exit 0
fi
cache=/var/cache/pressfleet
mkdir -p "$cache"; chmod 700 "$cache"
archive="$cache/wordpress-$sha.tar.gz"
if ! echo "$sha  $archive" | ${algo}sum -c --status 2>/dev/null; then
  curl -fsS --retry 3 --max-time 600 -o "$archive.part" "$url"
  if ! echo "$sha  $archive.part" | ${algo}sum -c --status; then
    got=$(${algo}sum "$archive.part" | cut -d' ' -f1); rm -f "$archive.part"
    echo "checksum mismatch for $url: expected $algo $sha, got $got" >&2; exit 3
  fi
  mv -f "$archive.part" "$archive"
fi
new="$dir/htdocs.pressfleet-new"
rm -rf "$new"; mkdir -p "$new"
tar -xzf "$archive" -C "$new" --strip-components=1 --no-same-owner
if [ -d "$docroot/wp-content" ]; then
  # an upgrade: new core files, the site's own wp-content kept
  rm -rf "$new/wp-content"; cp -a "$docroot/wp-content" "$new/wp-content"
fi
mkdir -p "$new/wp-content/uploads" "$new/wp-content/mu-plugins"
chown -R root:"$user" "$new"
find "$new" -type d -exec chmod 0750 {} +
find "$new" -type f -exec chmod 0640 {} +
if [ "$writable" = all ]; then chown -R "$user:$user" "$new"; else chown -R "$user:$user" "$new/wp-content/uploads"; fi
if [ -d "$docroot" ]; then rm -rf "$dir/htdocs.pressfleet-old"; mv "$docroot" "$dir/htdocs.pressfleet-old"; fi
mv "$new" "$docroot"
rm -rf "$dir/htdocs.pressfleet-old"
echo "$algo:$sha" > "$marker"
echo "installed $(sed -n "s/^\$wp_version = '\(.*\)';/\1/p" "$docroot/wp-includes/version.php")"
