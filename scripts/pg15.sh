#!/usr/bin/env bash
# `make test-pg15`: the suite against PostgreSQL 15, the oldest supported release.
#
# Debian's postgresql-15 is installed when missing (root and apt-get), pgvector is built from its
# own source (Debian's postgresql-15-pgvector is 0.4.1, below the floor) into a private copy of
# the PostgreSQL 15 installation under .pg15/ (ignored by git: the system's stays untouched), a
# throwaway cluster is started on 127.0.0.1:$PG15_PORT (as the `postgres` system user when run
# as root), the suite runs against it through AFILO_TEST_DATABASE_URL, and the cluster is stopped
# and removed whatever happens.
#
# Settings: PGVECTOR_TARBALL (default: shared/vendor/pgvector-0.8.6.tar.gz beside the
# repository), PG15_PORT (default 54315), PG15_PYTEST_ARGS (default: as `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work="$root/.pg15"
port="${PG15_PORT:-54315}"
pgvector_version=0.8.6
packages="postgresql-15 postgresql-server-dev-15"
debian_bin=/usr/lib/postgresql/15/bin
debian_share=/usr/share/postgresql/15

fail() {
  echo "make test-pg15: $*" >&2
  exit 1
}

# The tarball sits in shared/vendor beside the repository; a git worktree's repository is the
# one its common git directory belongs to.
find_tarball() {
  if [ -n "${PGVECTOR_TARBALL:-}" ]; then
    echo "$PGVECTOR_TARBALL"
    return
  fi
  local common
  common=$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)
  for repository in "$root" ${common:+"$(dirname "$common")"}; do
    candidate="$repository/../shared/vendor/pgvector-$pgvector_version.tar.gz"
    if [ -f "$candidate" ]; then
      echo "$candidate"
      return
    fi
  done
  echo "$root/../shared/vendor/pgvector-$pgvector_version.tar.gz"
}

tarball=$(find_tarball)
[ -f "$tarball" ] || fail "pgvector's source $tarball is absent: put pgvector-$pgvector_version.tar.gz (github.com/pgvector/pgvector, tag v$pgvector_version) there or set PGVECTOR_TARBALL"

missing=""
for package in $packages; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    fail "missing Debian packages:$missing (install them as root: apt-get install$missing)"
  fi
  echo "installing$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# A private copy of the installation, laid out as Debian lays it out: PostgreSQL finds its share
# and library directories relative to its binary, so the copy loads the pgvector built into it.
install_root="$work/root"
bin="$install_root$debian_bin"
if ! grep -qs "default_version = '$pgvector_version'" "$install_root$debian_share/extension/vector.control"; then
  echo "building pgvector $pgvector_version against PostgreSQL 15 into $install_root"
  rm -rf "$install_root" "$work/build"
  mkdir -p "$install_root/usr/lib/postgresql" "$install_root/usr/share/postgresql" "$work/build"
  cp -a /usr/lib/postgresql/15 "$install_root/usr/lib/postgresql/"
  cp -a "$debian_share" "$install_root/usr/share/postgresql/"
  tar -xzf "$tarball" -C "$work/build" --strip-components=1
  make -s -C "$work/build" PG_CONFIG="$debian_bin/pg_config" OPTFLAGS="" >/dev/null
  make -s -C "$work/build" PG_CONFIG="$debian_bin/pg_config" DESTDIR="$install_root" install >/dev/null
fi

data="$work/data"
run_dir="$work/run"  # the socket and the server log
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
as_server_user=()
if [ "$(id -u)" -eq 0 ]; then
  as_server_user=(runuser -u postgres --)
fi

stop_cluster() {
  if [ -f "$data/postmaster.pid" ]; then
    "${as_server_user[@]}" "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null || true
  fi
  rm -rf "$data" "$work/pwfile"
}
trap stop_cluster EXIT
stop_cluster

rm -rf "$run_dir"
mkdir -p "$data" "$run_dir"
umask 077
printf '%s\n' "$password" >"$work/pwfile"
umask 022
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$data" "$run_dir" "$work/pwfile"
  chmod o+x "$work"
fi
"${as_server_user[@]}" "$bin/initdb" -D "$data" -U postgres --auth=scram-sha-256 \
  --pwfile="$work/pwfile" --encoding=UTF8 --locale=C.UTF-8 >/dev/null
rm -f "$work/pwfile"
# Throwaway data: durability off, as the embedded test server has it; pg_stat_statements loaded,
# as Neon and Supabase load it (`inspect` reads it).
"${as_server_user[@]}" "$bin/pg_ctl" -D "$data" -l "$run_dir/postgresql.log" -w start -o \
  "-c listen_addresses=127.0.0.1 -p $port -k $run_dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_preload_libraries=pg_stat_statements" \
  >/dev/null
echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') with pgvector $pgvector_version on 127.0.0.1:$port"

export AFILO_TEST_DATABASE_URL="postgresql://postgres:$password@127.0.0.1:$port/postgres"
read -r -a pytest_args <<<"${PG15_PYTEST_ARGS:--n 3 --dist loadfile --durations=20}"
.venv/bin/pytest --basetemp=.pytest-tmp-pg15 -p no:cacheprovider "${pytest_args[@]}" "$@"
