#!/usr/bin/env bash
# Run the whole test suite: lint, types, and pytest against a real Temporal dev server
# (started by the fixtures) and real databases (a SQLite file, PostgreSQL and MariaDB at
# 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# PostgreSQL runs on every dev and CI machine; start it if it has stopped.
if ! .venv/bin/python -c "import psycopg; psycopg.connect('postgresql://postgres@127.0.0.1:5432/test').close()" 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    fi
fi
# So does MariaDB (root without a password over TCP); likewise.
if ! .venv/bin/python -c "import pymysql; pymysql.connect(host='127.0.0.1', port=3306, user='root').close()" 2>/dev/null; then
    if [ -x /etc/init.d/mariadb ]; then
        /etc/init.d/mariadb start >/dev/null || true
    fi
fi

# And RabbitMQ (guest/guest), for the notification tests.
if ! (echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    if [ -x /etc/init.d/rabbitmq-server ]; then
        /etc/init.d/rabbitmq-server start >/dev/null || true
    fi
fi

.venv/bin/ruff check .
.venv/bin/mypy .
set +e
# Most tests wait on Temporal timers and timeouts rather than the CPU (two workers kept
# 0.85 of the 2 cores busy): run three in parallel (each pytest worker starts its own
# Temporal dev server and databases). docs/testing.md has the figures.
.venv/bin/pytest -n "${TEST_WORKERS:-3}" "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
    echo "pytest ran no test: that is a failure" >&2
    exit 1
fi
exit "$status"
