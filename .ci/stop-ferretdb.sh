#!/usr/bin/env bash
# Stops what .ci/start-ferretdb.sh started (FerretDB, then its PostgreSQL cluster).
# The state directory is kept; remove it for a clean start.
set -uo pipefail
state=${TIMGW_FERRETDB_STATE:-/tmp/timgw-ferretdb}
if [[ -f $state/ferretdb.pid ]]; then
	kill "$(cat "$state/ferretdb.pid")" 2>/dev/null
	rm -f "$state/ferretdb.pid"
fi
if [[ -f $state/pg/PG_VERSION ]]; then
	pgbin=""
	for d in /usr/lib/postgresql/*/bin; do [[ -x $d/pg_ctl ]] && pgbin=$d; done
	if [[ -n $pgbin ]]; then
		if [[ $(id -u) == 0 ]]; then
			runuser -u postgres -- "$pgbin/pg_ctl" -D "$state/pg" -m fast stop >/dev/null 2>&1
		else
			"$pgbin/pg_ctl" -D "$state/pg" -m fast stop >/dev/null 2>&1
		fi
	fi
fi
exit 0
