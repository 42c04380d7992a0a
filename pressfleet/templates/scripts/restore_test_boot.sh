#!/bin/sh
# Boot a restored WordPress copy with PHP's built-in server on loopback, as RUNNER (a throwaway user made for
# this restore-test alone, never www-data or a site's user), and fetch its
# home page (pressfleet restore-test). Prints "STATUS SECONDS BYTES MARKER" where MARKER is 1 when the
# page links wp-content (WordPress rendered a theme). The server is stopped by its PID.
# Usage: sh -c "$(cat this)" sh DOCROOT PORT RUNNER
set -eu
docroot=$1 port=$2 runner=$3
out=$(mktemp)
runuser -u "$runner" -- php -d display_errors=0 -S "127.0.0.1:$port" -t "$docroot" >/dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out"' EXIT
i=0
while ! curl -s -o /dev/null "http://127.0.0.1:$port/wp-includes/images/blank.gif"; do
  i=$((i + 1)); [ "$i" -lt 100 ] || { echo "php -S did not start" >&2; exit 3; }; sleep 0.1
done
res=$(curl -s -o "$out" -w '%{http_code} %{time_total} %{size_download}' --max-time 60 "http://127.0.0.1:$port/")
if grep -q 'wp-content/' "$out"; then marker=1; else marker=0; fi
echo "$res $marker"
