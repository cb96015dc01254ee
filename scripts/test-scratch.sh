#!/usr/bin/env bash
# Prints the folder `make test` keeps its test servers' data in: a folder of this checkout's own in
# /dev/shm (memory) where that has room, else .pytest-tmp in the checkout. The suite creates,
# copies and drops hundreds of databases and clusters; on a disk file system every one of their
# files is created, journaled and discarded again, which made the suite wait on the kernel
# (docs/benchmarks.md, "The test suite"). The data is thrown away after the run either way.
set -euo pipefail
checkout=$(pwd -P)
needed_kib=$((4 * 1024 * 1024))
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  available_kib=$(df -Pk /dev/shm | awk 'NR == 2 { print $4 }')
  if [ "${available_kib:-0}" -ge "$needed_kib" ]; then
    # Named after the checkout: pytest clears its --basetemp, and another checkout's running
    # suite keeps its servers in its own.
    echo "/dev/shm/afilo-db-test-$(printf '%s' "$checkout" | cksum | cut -d ' ' -f 1)"
    exit 0
  fi
fi
echo "$checkout/.pytest-tmp"
