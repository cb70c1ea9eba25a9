#!/bin/sh
# Writes PgBouncer's user list from the environment (never baked into the image), then runs it.
set -eu
: "${POSTGRES_APP_PASSWORD:?set POSTGRES_APP_PASSWORD}"
userlist=/tmp/pgbouncer-userlist.txt
umask 077
printf '"%s" "%s"\n' "${POSTGRES_APP_USER:-botplatform_app}" "$POSTGRES_APP_PASSWORD" > "$userlist"
exec pgbouncer /etc/pgbouncer/pgbouncer.ini
