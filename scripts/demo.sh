#!/usr/bin/env bash
# The demo: set everything up and adopt a real image file through both workflows.
#   scripts/demo.sh        start (or reuse) the Temporal dev server and the workers, then
#                          manage a fresh demo image and print the volume and the UI URL
#   scripts/demo.sh stop   stop what the demo started
# Embedded defaults: Temporal dev server (SQLite file data/temporal.db, UI on :8233),
# SQLite inventory data/inventory.db, a `file` backend over data/demo-backend, and the
# Cinder-compatible REST API on http://127.0.0.1:8776 (noauth, for python-cinderclient).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=data
PIDS=$DATA/pids
mkdir -p "$DATA/logs" "$PIDS"

stop_all() {
    for pidfile in "$PIDS"/*.pid; do
        [ -f "$pidfile" ] || continue
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
    echo "demo stopped"
}
if [ "${1:-}" = "stop" ]; then stop_all; exit 0; fi

bash scripts/setup.sh
export TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-127.0.0.1:7233}
export DATABASE_URL=${DATABASE_URL:-sqlite:///$PWD/$DATA/inventory.db}
PY=.venv/bin/python

running() { [ -f "$PIDS/$1.pid" ] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }
start() {  # start NAME COMMAND...: run in the background unless already running
    local name=$1; shift
    if running "$name"; then return; fi
    nohup "$@" >"$DATA/logs/$name.log" 2>&1 &
    echo $! >"$PIDS/$name.pid"
}

start temporal .venv/bin/temporal server start-dev --ip 127.0.0.1 --port 7233 --ui-port 8233 \
    --db-filename "$DATA/temporal.db" \
    --search-attribute VolumeId=Keyword --search-attribute ProjectId=Keyword \
    --search-attribute BackendHost=Keyword --search-attribute VolumeStatus=Keyword \
    --search-attribute VolumeIds=KeywordList \
    --dynamic-config-value frontend.searchAttributesSizeOfValueLimit=65536 \
    --dynamic-config-value frontend.searchAttributesTotalSizeLimit=131072
for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/7233) 2>/dev/null && break
    sleep 0.3
done

$PY starter.py migrate

# A backend directory with a couple of real images (made fresh each run, so reruns work).
BACKEND_DIR=$DATA/demo-backend
mkdir -p "$BACKEND_DIR"
stamp=$(date +%H%M%S)
qemu-img create -q -f qcow2 "$BACKEND_DIR/demo-$stamp.qcow2" 1G
qemu-img create -q -f raw "$BACKEND_DIR/scratch-$stamp.raw" 512M

start api-worker $PY worker.py api
start backend-worker $PY worker.py backend --backend-host node1@file#pool --driver file \
    --path "$BACKEND_DIR"
start rest-api $PY -m volume_manage.rest --host 127.0.0.1 --port 8776 --auth noauth
for _ in $(seq 1 100); do
    $PY starter.py backends --json 2>/dev/null | grep -q '"up": true' && break
    sleep 0.3
done
for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/8776) 2>/dev/null && break
    sleep 0.3
done

echo
echo "== adopting demo-$stamp.qcow2 from node1@file#pool =="
$PY starter.py manage node1@file#pool "source-name=demo-$stamp.qcow2" \
    --name "demo-$stamp" --metadata purpose=demo --wait
echo
echo "backend directory now holds:"
ls -1 "$BACKEND_DIR" | sed 's/^/  /'

if [ "${DEMO_SHORT:-}" != 1 ]; then
    echo
    echo "== what else could be adopted on node1@file#pool =="
    $PY starter.py manageable node1@file#pool --detail
    echo
    echo "== bulk-adopting every safe object =="
    $PY starter.py bulk-manage node1@file#pool --all --batch-size 10 || true
    echo
    echo "== giving demo-$stamp back (unmanage) =="
    volume_id=$($PY starter.py list --json --limit 10000 \
        | .venv/bin/python -c "import json,sys; print(next(v['id'] for v in json.load(sys.stdin) if v['name'] == 'demo-$stamp'))")
    $PY starter.py unmanage "$volume_id"
    $PY starter.py manageable node1@file#pool --detail
fi
echo
echo "Temporal web UI: http://localhost:8233  (workflows manage-request-* and manage-volume-*)"
echo "Cinder-compatible REST API: http://127.0.0.1:8776 (noauth); try python-cinderclient:"
echo "  .venv/bin/cinder --os-auth-type noauth --os-user-id admin --os-project-id admin \\"
echo "      --os-endpoint http://127.0.0.1:8776/v3 --os-volume-api-version 3.8 \\"
echo "      manageable-list node1@file#pool"
echo "more: .venv/bin/python starter.py --help   stop everything: scripts/demo.sh stop"
