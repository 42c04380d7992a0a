#!/bin/sh
# Delete one site's pages from nginx's shared page cache, and only its pages (a restore of the site, its removal).
# The cache key is scheme, method, host and URI (templates/config/nginx/http.conf.j2): a cache file whose KEY
# line starts with one of the site's names followed by / is the site's. Fixed strings, no regex; rm never
# follows a link; a linked cache folder is refused.
#
# Usage: sh -c "$(cat this)" sh DOMAIN [ALIAS...]
# Prints "removed N cached pages of DOMAIN" when it removed any.
set -euf
fail() { echo "refused: $*" >&2; exit 3; }
[ $# -ge 1 ] || fail "usage: DOMAIN [ALIAS...]"
for name in "$@"; do
  case "$name" in ""|.*|*..*|*[!a-z0-9.-]*) fail "bad domain";; esac
done
domain=$1
cache=${PRESSFLEET_PAGE_CACHE:-/var/cache/nginx/pressfleet}
[ ! -L "$cache" ] || fail "$cache is a link"
[ -d "$cache" ] || exit 0
keys=$(mktemp)
trap 'rm -f "$keys"' EXIT
for name in "$@"; do
  for pre in httpsGET httpsHEAD httpGET httpHEAD; do printf 'KEY: %s%s/\n' "$pre" "$name"; done
done > "$keys"
found=$(grep -rl -a -F -f "$keys" -- "$cache" 2>/dev/null | wc -l || true)
if [ "$found" -gt 0 ]; then
  grep -rlZ -a -F -f "$keys" -- "$cache" 2>/dev/null | xargs -0 -r rm -f --
  echo "removed $found cached pages of $domain"
fi
left=$(grep -rl -a -F -f "$keys" -- "$cache" 2>/dev/null | wc -l || true)
[ "$left" -eq 0 ] || fail "$left cached pages of $domain are still in $cache"
