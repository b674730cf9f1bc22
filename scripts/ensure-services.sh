#!/usr/bin/env bash
# Make sure PostgreSQL and RabbitMQ answer on localhost before the test suite runs.
# Order of attempts: already up -> start the installed server -> install it with apt (as root)
# -> stop with a message saying what to install. Never lets the suite skip silently.
set -uo pipefail

PG_HOST=${FEATURE_SERVICE_TEST_PG_HOST:-127.0.0.1}
PG_PORT=${FEATURE_SERVICE_TEST_PG_PORT:-5432}
MQ_HOST=${FEATURE_SERVICE_TEST_MQ_HOST:-127.0.0.1}
MQ_PORT=${FEATURE_SERVICE_TEST_MQ_PORT:-5672}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() {
  local host=$1 port=$2 secs=$3
  for _ in $(seq 1 "$secs"); do port_open "$host" "$port" && return 0; sleep 1; done
  return 1
}

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

start_postgres() {
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
    local ver; ver=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || true
  fi
}

install_postgres() {
  echo "PostgreSQL not installed: installing with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  local ver; ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  local hba="/etc/postgresql/$ver/main/pg_hba.conf"
  # Tests connect over TCP as postgres without a password, like the machines CI runs on.
  sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(local\s+all\s+all\s+)\S+/\1trust/' "$hba"
  start_postgres
}

ensure_pg_database() {
  command -v psql >/dev/null || return 0
  if ! psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -c 'create database test' >/dev/null 2>&1 || true
  fi
}

start_rabbitmq() {
  command -v rabbitmq-server >/dev/null && { rabbitmq-server -detached >/dev/null 2>&1 || true; }
}

install_rabbitmq() {
  echo "RabbitMQ not installed: installing with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  start_rabbitmq
}

fail=0
if ! port_open "$PG_HOST" "$PG_PORT"; then
  echo "PostgreSQL is not answering on $PG_HOST:$PG_PORT: starting it"
  start_postgres
  if ! wait_port "$PG_HOST" "$PG_PORT" 30; then
    if ! command -v pg_ctlcluster >/dev/null && can_apt; then install_postgres; fi
    wait_port "$PG_HOST" "$PG_PORT" 30 || { echo "ERROR: PostgreSQL is needed on $PG_HOST:$PG_PORT (install the 'postgresql' package, trust auth, database 'test')"; fail=1; }
  fi
fi
[ $fail = 0 ] && ensure_pg_database

if ! port_open "$MQ_HOST" "$MQ_PORT"; then
  echo "RabbitMQ is not answering on $MQ_HOST:$MQ_PORT: starting it"
  start_rabbitmq
  if ! wait_port "$MQ_HOST" "$MQ_PORT" 60; then
    if ! command -v rabbitmq-server >/dev/null && can_apt; then install_rabbitmq; fi
    wait_port "$MQ_HOST" "$MQ_PORT" 60 || { echo "ERROR: RabbitMQ is needed on $MQ_HOST:$MQ_PORT (install the 'rabbitmq-server' package, user guest/guest)"; fail=1; }
  fi
fi

# The management API (port 15672) is how the service applies a policy to a features.live queue
# that exists with other arguments; the tests exercise that path, so it must be on.
MQ_MGMT_PORT=${FEATURE_SERVICE_TEST_MQ_MANAGEMENT_PORT:-15672}
if [ $fail = 0 ] && ! port_open "$MQ_HOST" "$MQ_MGMT_PORT"; then
  if command -v rabbitmq-plugins >/dev/null; then
    echo "RabbitMQ management API is not answering on $MQ_HOST:$MQ_MGMT_PORT: enabling the plugin"
    rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1 || true
  fi
  wait_port "$MQ_HOST" "$MQ_MGMT_PORT" 60 || { echo "ERROR: the RabbitMQ management API is needed on $MQ_HOST:$MQ_MGMT_PORT (rabbitmq-plugins enable rabbitmq_management)"; fail=1; }
fi

[ $fail = 0 ] && echo "services: PostgreSQL $PG_HOST:$PG_PORT and RabbitMQ $MQ_HOST:$MQ_PORT (management :$MQ_MGMT_PORT) are up"
exit $fail
