#!/bin/sh
# Extract a zstd-compressed tar from stdin into STAGING (pressfleet restores), owners kept by name.
# Usage: sh -c "$(cat this)" sh STAGING
set -eu
staging=$1
mkdir -p "$staging"
zstd -q -dc | tar -C "$staging" -xpf - --same-owner
