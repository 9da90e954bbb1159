#!/usr/bin/env bash
# Builds and starts FerretDB v1.24.2 (the MongoDB wire protocol) for the MongoDB storage
# plugin's tests, on PostgreSQL 15 from the machine image (a private cluster on a private
# port, run as user postgres), or on SQLite when PostgreSQL is not installed.
#
#   eval "$(bash .ci/start-ferretdb.sh)"    # from the repository root
#
# stdout is only shell for eval: `export TIMGW_MONGO_URI=mongodb://127.0.0.1:PORT/`;
# progress goes to stderr. Stop everything with `bash .ci/stop-ferretdb.sh`.
#
# Environment: TIMGW_FERRETDB_STATE (state directory, default /tmp/timgw-ferretdb),
# TIMGW_FERRETDB_PORT (default 27027), TIMGW_FERRETDB_PG_PORT (default 54329),
# TIMGW_FERRETDB_BACKEND (postgresql or sqlite; default postgresql when initdb exists).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state=${TIMGW_FERRETDB_STATE:-/tmp/timgw-ferretdb}
port=${TIMGW_FERRETDB_PORT:-27027}
pgport=${TIMGW_FERRETDB_PG_PORT:-54329}
log() { echo "start-ferretdb: $*" >&2; }

mkdir -p "$state"
chmod 755 "$state"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [[ -f $state/ferretdb.pid ]] && kill -0 "$(cat "$state/ferretdb.pid")" 2>/dev/null && listening "$port"; then
	log "already running (pid $(cat "$state/ferretdb.pid"))"
	echo "export TIMGW_MONGO_URI=mongodb://127.0.0.1:$port/"
	exit 0
fi

# 1. Build our tiny main around github.com/FerretDB/FerretDB/ferretdb (its own module).
log "building FerretDB (first build takes about 1.5 min)"
(cd "$root/.ci/ferretdb" && go build -o "$state/ferretdb" .) >&2

# 2. The backend.
backend=${TIMGW_FERRETDB_BACKEND:-}
pgbin=""
for d in /usr/lib/postgresql/*/bin; do [[ -x $d/initdb ]] && pgbin=$d; done
if [[ -z $backend ]]; then
	if [[ -n $pgbin ]]; then backend=postgresql; else backend=sqlite; fi
fi

asdb() { # run a PostgreSQL command as user postgres (initdb refuses root)
	if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

args=()
case $backend in
postgresql)
	[[ -n $pgbin ]] || { log "PostgreSQL is not installed"; exit 1; }
	pgdata=$state/pg
	mkdir -p "$pgdata" "$state/pgrun"
	if [[ $(id -u) == 0 ]]; then chown postgres "$pgdata" "$state/pgrun"; fi
	chmod 700 "$pgdata"
	if [[ ! -f $pgdata/PG_VERSION ]]; then
		log "initdb $pgdata"
		asdb "$pgbin/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 >&2
	fi
	if ! asdb "$pgbin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
		log "starting PostgreSQL on 127.0.0.1:$pgport"
		asdb "$pgbin/pg_ctl" -D "$pgdata" -l "$state/pgrun/pg.log" -w -t 60 \
			-o "-p $pgport -k $state/pgrun -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
			start >&2
	fi
	asdb "$pgbin/psql" -h 127.0.0.1 -p "$pgport" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='ferretdb'" | grep -q 1 ||
		asdb "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U postgres ferretdb >&2
	args=(-postgresql "postgres://postgres@127.0.0.1:$pgport/ferretdb")
	;;
sqlite)
	mkdir -p "$state/sqlite"
	args=(-sqlite "file:$state/sqlite/")
	;;
*)
	log "unknown backend $backend"
	exit 1
	;;
esac

# 3. FerretDB itself.
log "starting FerretDB on 127.0.0.1:$port ($backend)"
nohup "$state/ferretdb" -listen "127.0.0.1:$port" "${args[@]}" >"$state/ferretdb.log" 2>&1 &
echo $! >"$state/ferretdb.pid"
for _ in $(seq 1 300); do
	if listening "$port"; then
		log "ready (pid $(cat "$state/ferretdb.pid"), log $state/ferretdb.log)"
		echo "export TIMGW_MONGO_URI=mongodb://127.0.0.1:$port/"
		exit 0
	fi
	if ! kill -0 "$(cat "$state/ferretdb.pid")" 2>/dev/null; then
		log "FerretDB exited:"; cat "$state/ferretdb.log" >&2; exit 1
	fi
	sleep 0.1
done
log "FerretDB did not listen within 30s:"; cat "$state/ferretdb.log" >&2
exit 1
