#!/usr/bin/env bash
# The demo: set everything up and adopt a real image through both workflows.
#   scripts/demo.sh                  start (or reuse) the Temporal dev server and the workers,
#                                    then manage a fresh image of a `file` backend and print
#                                    the volume and the UI URL
#   DEMO_DRIVER=rbd scripts/demo.sh  the same on an `rbd` backend: a one-node Ceph cluster
#                                    under data/ceph (started, or reused while it runs)
#   scripts/demo.sh stop             stop what the demo started, the Ceph cluster too
# Embedded defaults: Temporal dev server (SQLite file data/temporal.db, UI on :8233),
# SQLite inventory data/inventory.db, a `file` backend over data/demo-backend, and the
# Cinder-compatible REST API on http://127.0.0.1:8776 (noauth, for python-cinderclient;
# development only: a cloud runs it with --auth keystone, docs/rest-api.md).
# The driver is a variable, not a flag: like DEMO_SHORT it changes what a run does, while
# `stop`, the one argument, stops every part whichever run started it. DEMO_DATA (data),
# DEMO_TEMPORAL_PORT (7233), DEMO_UI_PORT (8233) and DEMO_REST_PORT (8776) move the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DEMO_DATA:-data}
PIDS=$DATA/pids
CEPH_DIR=$DATA/ceph
TEMPORAL_PORT=${DEMO_TEMPORAL_PORT:-7233}
UI_PORT=${DEMO_UI_PORT:-8233}
REST_PORT=${DEMO_REST_PORT:-8776}
DRIVER=${DEMO_DRIVER:-file}
FILE_HOST=node1@file#pool
RBD_POOL=volumes
RBD_HOST=node1@rbd#$RBD_POOL
RBD_CLIENT=demo
mkdir -p "$DATA/logs" "$PIDS"
export TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-127.0.0.1:$TEMPORAL_PORT}
export DATABASE_URL=${DATABASE_URL:-sqlite:///$(cd "$DATA" && pwd)/inventory.db}
PY=.venv/bin/python

alive() {  # alive PID: running, and not a zombie nobody reaped
    [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)" != Z ]
}
running() { [ -f "$PIDS/$1.pid" ] && alive "$(cat "$PIDS/$1.pid")"; }

give_back_rbd_volumes() {
    # The demo cluster keeps its images in the OSD's memory (memstore): they go when it
    # stops. Give its volumes back first, so the inventory keeps no entry for an image
    # that no longer exists.
    local ids
    ids=$($PY starter.py list --host "$RBD_HOST" --json --limit 10000 | $PY -c \
        "import json,sys; print(' '.join(v['id'] + ':' + v['status'] for v in json.load(sys.stdin)))")
    for item in $ids; do
        case ${item#*:} in
            available) $PY starter.py unmanage "${item%%:*}" >/dev/null ;;
            error_managing) $PY starter.py delete "${item%%:*}" >/dev/null ;;
        esac
    done
    [ -z "$ids" ] || echo "gave back the rbd demo's volumes (the cluster's images go with it)"
}

stop_one() {  # stop_one NAME: SIGTERM, and wait (a worker drains its steps for up to 30 s)
    local pid
    pid=$(cat "$PIDS/$1.pid")
    rm -f "$PIDS/$1.pid"
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 400); do alive "$pid" || break; sleep 0.1; done
}

stop_all() {
    if [ -f "$CEPH_DIR/daemons.json" ] && running backend-rbd && running api-worker \
        && running temporal; then
        give_back_rbd_volumes || echo "could not give back the rbd demo's volumes" >&2
    fi
    for pidfile in "$PIDS"/*.pid; do
        [ -f "$pidfile" ] || continue
        stop_one "$(basename "$pidfile" .pid)"
    done
    if [ -f "$CEPH_DIR/daemons.json" ]; then
        $PY -m volume_manage.operations.cephcluster stop "$CEPH_DIR"
    fi
    echo "demo stopped"
}
if [ "${1:-}" = "stop" ]; then stop_all; exit 0; fi
case $DRIVER in
    file) HOST=$FILE_HOST ;;
    rbd) HOST=$RBD_HOST ;;
    *) echo "DEMO_DRIVER must be file or rbd, not '$DRIVER'" >&2; exit 1 ;;
esac

bash scripts/setup.sh

start() {  # start NAME COMMAND...: run in the background unless already running
    local name=$1; shift
    if running "$name"; then return; fi
    nohup "$@" >"$DATA/logs/$name.log" 2>&1 &
    echo $! >"$PIDS/$name.pid"
}
backend_up() {  # backend_up HOST@BACKEND: its service row is there and up
    $PY starter.py backends --json 2>/dev/null | $PY -c \
        "import json,sys; sys.exit(not any(b['host'] == sys.argv[1] and b['up'] for b in json.load(sys.stdin)))" "$1"
}

start temporal .venv/bin/temporal server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" \
    --ui-port "$UI_PORT" --db-filename "$DATA/temporal.db" \
    --search-attribute VolumeId=Keyword --search-attribute ProjectId=Keyword \
    --search-attribute BackendHost=Keyword --search-attribute VolumeStatus=Keyword \
    --search-attribute VolumeIds=KeywordList \
    --search-attribute SnapshotId=Keyword --search-attribute SnapshotStatus=Keyword \
    --dynamic-config-value frontend.searchAttributesSizeOfValueLimit=65536 \
    --dynamic-config-value frontend.searchAttributesTotalSizeLimit=131072
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$TEMPORAL_PORT") 2>/dev/null && break
    sleep 0.3
done

$PY starter.py migrate

stamp=$(date +%H%M%S)
start api-worker $PY worker.py api
if [ "$DRIVER" = rbd ]; then
    # A one-node cluster (one monitor, manager and memstore OSD on 127.0.0.1, cephx on),
    # reused while it runs; the backend connects as a client with only `profile rbd`
    # rights on its pool, as Cinder's does. The images are made as an operator would.
    said=$($PY -m volume_manage.operations.cephcluster start "$CEPH_DIR" --pool "$RBD_POOL" \
        --client "$RBD_CLIENT")
    echo "$said"
    if [[ $said == *" started "* ]]; then  # a new cluster, on a new port
        if running backend-rbd; then stop_one backend-rbd; fi
        stale=$($PY starter.py list --host "$RBD_HOST" --json --limit 10000 \
            | $PY -c "import json,sys; print(len(json.load(sys.stdin)))")
        if [ "$stale" != 0 ]; then
            echo "note: $stale entries on $RBD_HOST name images of an earlier demo cluster," \
                "which went with it (it stopped without scripts/demo.sh stop)" >&2
        fi
    fi
    CEPH_ABS=$(cd "$CEPH_DIR" && pwd)
    rbd_as_client() {
        rbd --conf "$CEPH_ABS/ceph.conf" --id "$RBD_CLIENT" \
            --keyring "$CEPH_ABS/client.$RBD_CLIENT.keyring" "$@"
    }
    IMAGE=demo-$stamp
    rbd_as_client create --size 1G "$RBD_POOL/$IMAGE"
    rbd_as_client create --size 512M "$RBD_POOL/scratch-$stamp"
    start backend-rbd $PY worker.py backend --backend-host "$RBD_HOST" --driver rbd \
        --rbd-ceph-conf "$CEPH_ABS/ceph.conf" --rbd-user "$RBD_CLIENT" \
        --rbd-keyring "$CEPH_ABS/client.$RBD_CLIENT.keyring" --rbd-pool "$RBD_POOL"
    show_backend() {
        echo "pool $RBD_POOL now holds:"
        rbd_as_client ls "$RBD_POOL" | sed 's/^/  /'
    }
else
    # A backend directory with a couple of real images (made fresh each run, so reruns work).
    BACKEND_DIR=$DATA/demo-backend
    mkdir -p "$BACKEND_DIR"
    IMAGE=demo-$stamp.qcow2
    qemu-img create -q -f qcow2 "$BACKEND_DIR/$IMAGE" 1G
    qemu-img create -q -f raw "$BACKEND_DIR/scratch-$stamp.raw" 512M
    start backend-worker $PY worker.py backend --backend-host "$FILE_HOST" --driver file \
        --path "$BACKEND_DIR"
    show_backend() {
        echo "backend directory now holds:"
        ls -1 "$BACKEND_DIR" | sed 's/^/  /'
    }
fi
start rest-api $PY -m volume_manage.rest --host 127.0.0.1 --port "$REST_PORT" --auth noauth
for _ in $(seq 1 100); do
    backend_up "${HOST%%#*}" && break
    sleep 0.3
done
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$REST_PORT") 2>/dev/null && break
    sleep 0.3
done

echo
echo "== adopting $IMAGE from $HOST =="
$PY starter.py manage "$HOST" "source-name=$IMAGE" \
    --name "demo-$stamp" --metadata purpose=demo --wait
echo
show_backend

if [ "${DEMO_SHORT:-}" != 1 ]; then
    echo
    echo "== what else could be adopted on $HOST =="
    $PY starter.py manageable "$HOST" --detail
    echo
    echo "== bulk-adopting every safe object =="
    $PY starter.py bulk-manage "$HOST" --all --batch-size 10 || true
    echo
    echo "== giving demo-$stamp back (unmanage) =="
    volume_id=$($PY starter.py list --json --limit 10000 \
        | .venv/bin/python -c "import json,sys; print(next(v['id'] for v in json.load(sys.stdin) if v['name'] == 'demo-$stamp'))")
    $PY starter.py unmanage "$volume_id"
    $PY starter.py manageable "$HOST" --detail
fi
echo
echo "Temporal web UI: http://localhost:$UI_PORT  (workflows manage-request-* and manage-volume-*)"
echo "Cinder-compatible REST API: http://127.0.0.1:$REST_PORT (noauth); try python-cinderclient:"
echo "  .venv/bin/cinder --os-auth-type noauth --os-user-id admin --os-project-id admin \\"
echo "      --os-endpoint http://127.0.0.1:$REST_PORT/v3 --os-volume-api-version 3.8 \\"
echo "      manageable-list $HOST"
echo "more: .venv/bin/python starter.py --help   stop everything: scripts/demo.sh stop"
