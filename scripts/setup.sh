#!/usr/bin/env bash
# Make the project runnable on a fresh machine: a venv with the project and its test tools,
# and qemu-img (Debian's qemu-utils) for the file backend. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[test]"
    rm -f .venv/.installed-* && touch "$stamp"
fi

# Debian packages the project needs: qemu-img for the file backend, chromium for the web UI
# browser test, docker-compose (the client only) to validate docker-compose.yml offline.
missing=()
command -v qemu-img >/dev/null 2>&1 || missing+=(qemu-utils)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${missing[*]} from Debian's packages..."
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "missing Debian packages: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

# Ceph, for the rbd driver and its tests: the daemons of a one-node test cluster and the
# librados/librbd Python bindings. Debian builds the bindings for its own python3 only (they
# are not on PyPI): volume_manage/operations/cephbindings.py links their two extension
# modules into the venv when its Python is the same version.
# libradospp-dev and g++ build the driver's small C++ helper (below).
ceph_missing=()
for pkg in ceph-mon ceph-mgr ceph-osd ceph-common python3-rados python3-rbd libradospp-dev g++; do
    dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || ceph_missing+=("$pkg")
done
if [ ${#ceph_missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${ceph_missing[*]} from Debian's packages..."
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${ceph_missing[@]}" >/dev/null
    else
        echo "note: the rbd driver and its tests need ${ceph_missing[*]} (sudo apt-get install ${ceph_missing[*]}); they are skipped without" >&2
    fi
fi
# The bindings' rule (link them when the venv's Python matches) is shared with the Dockerfile.
.venv/bin/python -m volume_manage.operations.cephbindings
# The rbd driver's helper that reads image headers without opening the images (about a
# second to compile); without it the driver opens them, slower, with the same answers.
.venv/bin/python -m volume_manage.drivers.rbd_fastpath --build
# A real Keystone for the `--auth keystone` tests and benchmark: its own venv beside the
# project's (PyPI keystone and gunicorn, named for their versions; built once, ≈ 1-3 min).
.venv/bin/python -m volume_manage.operations.keystoneserver --install >/dev/null
