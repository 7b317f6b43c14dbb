#!/usr/bin/env bash
# Make sure the local Postgres and Redis that `make test` needs are answering; start them
# (Debian-style host) when they are not. Used by `make test` and CI, never in production.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  echo "postgres not answering on 127.0.0.1:5432 - starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
if ! redis_up; then
  echo "redis not answering on 127.0.0.1:6379 - starting it"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
for _ in $(seq 1 30); do
  if pg_up && redis_up; then
    exit 0
  fi
  sleep 1
done
echo "postgres or redis did not come up: check 'pg_lsclusters' and 'redis-cli ping'" >&2
exit 1
