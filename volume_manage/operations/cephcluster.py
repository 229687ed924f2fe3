"""Start and stop a real single-node Ceph cluster for tests, benchmarks and the demo.

Everything lives under one directory, no root-only paths: one monitor, one manager (it
keeps the pool statistics `ceph df` reports: without it every capacity reads 0) and one
OSD on `memstore` (or `bluestore` on a sparse file, whose objects survive a killed OSD),
all on 127.0.0.1 with a free port for the monitor, pool size 1, cephx on.
The `client.admin` keyring sets the cluster up; `add_client` makes a keyring with only
`profile rbd` rights, which is what a backend worker is given. Up in a few seconds, about
100 MB resident for the three daemons. Nothing is downloaded: the daemons come from
Debian's `ceph-mon`, `ceph-mgr`, `ceph-osd` and `ceph-common` (scripts/setup.sh).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from volume_manage.operations.devserver import free_port

DAEMONS = ("ceph-mon", "ceph-mgr", "ceph-osd", "ceph-authtool", "rbd")
# Manager modules are Python plug-ins (dashboards, balancers, telemetry): none is needed for
# the statistics, and loading them costs seconds of CPU and ~250 MB.
MGR_MODULES = ("alerts balancer crash devicehealth influx insights iostat localpool mirroring "
               "nfs orchestrator osd_perf_query osd_support pg_autoscaler progress prometheus "
               "rbd_support restful selftest snap_schedule stats status telegraf telemetry "
               "test_orchestrator volumes zabbix")


OBJECTSTORES = ("memstore", "bluestore")
BLUESTORE_MEMORY_TARGET = 256 << 20  # bytes; the OSD's caches shrink to stay near it


def missing_binaries() -> list[str]:
    """The Ceph programs a cluster needs that are not installed."""
    return [name for name in DAEMONS if shutil.which(name) is None]


def not_installed() -> str | None:
    """Why no cluster can start here (one line), or None when Ceph is installed."""
    missing = missing_binaries()
    if not missing:
        return None
    return f"Ceph is not installed (missing {', '.join(missing)}): run scripts/setup.sh"


class CephError(RuntimeError):
    pass


class CephCluster:
    """One monitor (`mon.a`), one manager (`mgr.x`), one OSD (`osd.0`) under `directory`."""

    def __init__(self, directory: Path, *, capacity_bytes: int = 4 << 30,
                 objectstore: str = "memstore") -> None:
        """`objectstore`: `memstore` (the default: fast, but the OSD keeps every object in
        its memory, so a killed OSD comes back empty) or `bluestore` on a sparse file
        `osd.0.block` of `capacity_bytes`, whose objects survive the OSD's SIGKILL (the
        fault drills)."""
        if objectstore not in OBJECTSTORES:
            raise ValueError(f"objectstore: one of {', '.join(OBJECTSTORES)}, not {objectstore!r}")
        self.dir = directory.resolve()
        self.port = free_port()
        self.capacity_bytes = capacity_bytes
        self.objectstore = objectstore
        self.fsid = str(uuid.uuid4())
        self.conf = self.dir / "ceph.conf"
        self.admin_keyring = self.dir / "client.admin.keyring"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._rados: Any = None

    # --- files -----------------------------------------------------------------------------

    def _write_conf(self) -> None:
        d = self.dir
        self.conf.write_text(f"""[global]
fsid = {self.fsid}
mon host = 127.0.0.1:{self.port}
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
{self._objectstore_conf()}mon allow pool size one = true
paxos propose interval = 0.01
# A watch left by a killed client expires after this (default 30 s): the driver waits it
# out before calling an image in use, so a short one keeps the tests' waits short.
osd client watch timeout = 5
# A client renews its watches at each objecter tick (default every 5 s): against a 5 s
# timeout a live `rbd watch` lapsed within seconds (its image then read as not in use).
objecter tick interval = 1
paxos min wait = 0.01
mon allow pool delete = true
mon data avail crit = 0
mon data avail warn = 0
mon warn on pool no redundancy = false
run dir = {d}/run
log file = {d}/log/$name.log
keyring = {d}/$name.keyring
mgr initial modules =
mgr stats period = 1
mon mgr digest period = 1
mgr disabled modules = {MGR_MODULES}
[mon.a]
mon data = {d}/mon.a
keyring = {d}/mon.a/keyring
admin socket = {d}/run/mon.a.asok
[mgr.x]
mgr data = {d}/mgr.x
admin socket = {d}/run/mgr.x.asok
[osd.0]
osd data = {d}/osd.0
admin socket = {d}/run/osd.0.asok
""")

    def _objectstore_conf(self) -> str:
        if self.objectstore == "memstore":
            return (f"osd objectstore = memstore\n"
                    f"memstore device bytes = {self.capacity_bytes}\n")
        # bluestore on a file: the file is made sparse at mkfs; no fsck at each mount (it
        # reads every object's metadata), and small caches (the default memory target is
        # 4 GiB, for a real disk).
        return (f"osd objectstore = bluestore\n"
                f"bluestore block path = {self.dir}/osd.0.block\n"
                f"bluestore block create = true\n"
                f"bluestore block size = {self.capacity_bytes}\n"
                f"bluestore fsck on mount = false\n"
                f"osd memory target = {BLUESTORE_MEMORY_TARGET}\n")

    def _authtool(self, *args: str) -> None:
        subprocess.run(["ceph-authtool", *args], check=True, capture_output=True)

    def env(self) -> dict[str, str]:
        return {**os.environ, "CEPH_CONF": str(self.conf)}

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout_s: float = 60.0) -> None:
        why = not_installed()
        if why:
            raise CephError(why)
        for sub in ("run", "log", "mon.a", "mgr.x", "osd.0"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self._write_conf()
        mon_keyring = self.dir / "mon.keyring"
        self._authtool("--create-keyring", str(mon_keyring), "--gen-key", "-n", "mon.",
                       "--cap", "mon", "allow *")
        self._authtool("--create-keyring", str(self.admin_keyring), "--gen-key",
                       "-n", "client.admin", "--cap", "mon", "allow *", "--cap", "osd",
                       "allow *", "--cap", "mgr", "allow *")
        self._authtool(str(mon_keyring), "--import-keyring", str(self.admin_keyring))
        self._run("ceph-mon", "--id", "a", "--mkfs", "--keyring", str(mon_keyring))
        self.start_daemon("mon.a")
        osd_id = self.command("osd create")
        if str(osd_id).strip() != "0":
            raise CephError(f"expected osd id 0, got {osd_id!r}")
        self.command("osd crush add", id=0, weight=1.0, args=["root=default"])
        (self.dir / "mgr.x.keyring").write_text(self.command(
            "auth get-or-create", entity="mgr.x",
            caps=["mon", "allow profile mgr", "osd", "allow *"], format="plain"))
        self.start_daemon("mgr.x")
        (self.dir / "osd.0.keyring").write_text(self.command(
            "auth get-or-create", entity="osd.0",
            caps=["osd", "allow *", "mon", "allow profile osd", "mgr", "allow profile osd"],
            format="plain"))
        self._run("ceph-osd", "--id", "0", "--mkfs")
        self.start_daemon("osd.0")
        self._wait(lambda: self.command("osd stat", format="json").get("num_up_osds") == 1,
                   timeout_s, "the OSD did not come up")

    def _run(self, *args: str) -> None:
        done = subprocess.run(args, env=self.env(), capture_output=True, check=False)
        if done.returncode != 0:
            raise CephError(f"{' '.join(args)} failed: {done.stderr.decode()[-2000:]}")

    def start_daemon(self, name: str) -> None:
        """Start `mon.a`, `mgr.x` or `osd.0` in the foreground of a child process (so its
        pid is ours to stop); logs go to `log/<name>.log`."""
        kind, ident = name.split(".")
        out = open(self.dir / "log" / f"{name}.out", "ab")  # noqa: SIM115 - the child keeps it
        self.processes[name] = subprocess.Popen(
            [f"ceph-{kind}", "--id", ident, "-f"], env=self.env(), stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
        out.close()

    def stop_daemon(self, name: str, sig: signal.Signals = signal.SIGTERM) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def signal_daemon(self, name: str, sig: signal.Signals) -> None:
        """Send `sig` to a running daemon (SIGSTOP/SIGCONT freeze and thaw it)."""
        self.processes[name].send_signal(sig)

    def osd_up_from(self) -> int:
        """The map epoch since which osd.0 is up (a restarted OSD gets a later one), or 0
        while the monitor has it down."""
        osd = self.command("osd dump", format="json")["osds"][0]
        return int(osd["up_from"]) if osd["up"] else 0

    def wait_for_osd_restart(self, up_from: int, timeout_s: float = 60.0) -> None:
        """Until the monitor has osd.0 up again since a later epoch than `up_from` (its
        `osd_up_from()` before it was killed), then reconnect the admin: a connection's
        requests to the dead OSD wait until its objecter takes them for laggy (10 s) and
        asks for the new map, where a new connection has it at once (measured: 16 s vs
        immediately)."""
        self._wait(lambda: self.osd_up_from() > up_from, timeout_s,
                   "the restarted OSD did not come up")
        self.reconnect_admin()

    def reconnect_admin(self) -> None:
        if self._rados is not None:
            self._rados.shutdown()
            self._rados = None

    def stop(self) -> None:
        self.reconnect_admin()
        for name in ("osd.0", "mgr.x", "mon.a"):
            self.stop_daemon(name)

    def _wait(self, ready: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise CephError(f"{name} exited; see {self.dir / 'log'}")
            try:
                if ready():
                    return
            except CephError:
                pass
            time.sleep(0.2)
        raise CephError(f"{what} within {timeout_s:.0f}s; see {self.dir / 'log'}")

    # --- admin commands through librados (no `ceph` process per command) --------------------

    def admin(self) -> Any:
        """A librados connection as client.admin."""
        if self._rados is None:
            import rados  # the Debian bindings: only where a cluster is started

            cluster = rados.Rados(conffile=str(self.conf), rados_id="admin")
            cluster.conf_set("client_mount_timeout", "30")
            cluster.connect(timeout=30)
            self._rados = cluster
        return self._rados

    def command(self, prefix: str, **args: Any) -> Any:
        """A monitor command (`ceph <prefix> ...`); JSON answers are decoded."""
        ret, out, err = self.admin().mon_command(json.dumps({"prefix": prefix, **args}), b"",
                                                 timeout=30)
        if ret != 0:
            raise CephError(f"ceph {prefix}: {err or os.strerror(-ret)}")
        if args.get("format") == "json" and out:
            return json.loads(out)
        return out.decode()

    def wait_for_statistics(self, timeout_s: float = 60.0) -> None:
        """Until the manager reports the OSD's capacity (`ceph df` reads 0 before)."""
        self._wait(lambda: self.command("df", format="json")["stats"]["total_bytes"] > 0,
                   timeout_s, "the manager did not report the cluster's capacity")

    def create_pool(self, name: str, pgs: int = 8, *, statistics: bool = True) -> None:
        """A replicated pool for RBD; with `statistics`, once the manager reports it (what a
        backend's capacity is read from: about a second on a fresh pool)."""
        import rbd

        self.command("osd pool create", pool=name, pg_num=pgs)
        self.command("osd pool application enable", pool=name, app="rbd")
        with self.admin().open_ioctx(name) as ioctx:
            rbd.RBD().pool_init(ioctx, True)
        if statistics:
            self.wait_for_pool_statistics(name)

    def wait_for_pool_statistics(self, name: str) -> None:
        self._wait(lambda: any(p["name"] == name for p in self.command("df", format="json")
                               ["pools"]), 30, f"no statistics for pool {name}")

    def delete_pool(self, name: str) -> None:
        self.command("osd pool delete", pool=name, pool2=name,
                     yes_i_really_really_mean_it=True)

    def add_client(self, name: str, pools: list[str] | None = None) -> Path:
        """A `client.<name>` keyring with only `profile rbd` rights (on `pools`, or all),
        as a Cinder backend gets; returns the keyring file."""
        osd = "profile rbd" + ("".join(f" pool={p}" for p in pools) if pools else "")
        keyring = self.dir / f"client.{name}.keyring"
        keyring.write_text(self.command(
            "auth get-or-create", entity=f"client.{name}",
            caps=["mon", "profile rbd", "osd", osd], format="plain"))
        return keyring

    def rbd(self, *args: str, stdin: bytes | None = None) -> str:
        """The `rbd` tool as client.admin."""
        done = subprocess.run(["rbd", *args], env=self.env(), input=stdin,
                              capture_output=True, check=False)
        if done.returncode != 0:
            raise CephError(f"rbd {' '.join(args)}: {done.stderr.decode().strip()}")
        return done.stdout.decode()


# --- `python -m volume_manage.operations.cephcluster start|stop|status DIR` --------------------
# For scripts/demo.sh and for trying the rbd driver by hand: the daemons outlive the command
# that starts them, so their pids are kept in DIR/daemons.json for `stop` and `status`.

PIDS_FILE = "daemons.json"
# What a cluster of this module leaves in its directory; a fresh start removes these only.
CLUSTER_FILES = ("run", "log", "mon.a", "mgr.x", "osd.0", "ceph.conf", "mon.keyring",
                 "client.admin.keyring", "mgr.x.keyring", "osd.0.keyring", PIDS_FILE)
DAEMON_ORDER = ("osd.0", "mgr.x", "mon.a")  # stopping order: the monitor last


def _alive(pid: int, name: str) -> bool:
    """`pid` is still the daemon `name` (not a zombie, nor a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    kind, ident = name.split(".")
    state = stat.rsplit(")", 1)[1].split()[0]
    return (state != "Z" and Path(cmdline[0].decode()).name == f"ceph-{kind}"
            and ident.encode() in cmdline)


def running_daemons(directory: Path) -> dict[str, int]:
    """The daemons of the cluster in `directory` that are running, by name."""
    try:
        pids: dict[str, int] = json.loads((directory / PIDS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {name: pid for name, pid in pids.items() if _alive(pid, name)}


def stop_directory(directory: Path, timeout_s: float = 20.0) -> list[str]:
    """Stop the daemons `start_directory` left running (SIGTERM, then SIGKILL after
    `timeout_s`); returns the names stopped. Memstore keeps the data in the OSD's memory:
    it is gone with the OSD."""
    running = running_daemons(directory)
    for name in DAEMON_ORDER:
        if name not in running:
            continue
        os.kill(running[name], signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(running[name], name):
            if time.monotonic() > deadline:
                os.kill(running[name], signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.1)
    (directory / PIDS_FILE).unlink(missing_ok=True)
    return [name for name in DAEMON_ORDER if name in running]


def start_directory(directory: Path, pools: list[str], clients: list[str]) -> bool:
    """A running cluster in `directory` with `pools` and `profile rbd` `clients` (keyrings
    `client.<name>.keyring` there): the one already running is reused, else a fresh one
    is started. Returns whether it was reused."""
    directory.mkdir(parents=True, exist_ok=True)
    running = running_daemons(directory)
    reused = set(running) == set(DAEMON_ORDER)
    if not reused:
        stop_directory(directory)  # what is left of a cluster cut short: memstore lost it
        for name in CLUSTER_FILES:
            path = directory / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    cluster = CephCluster(directory)
    try:
        if not reused:
            try:
                cluster.start()
            finally:  # recorded even if it failed halfway, so that `stop` can end them
                (directory / PIDS_FILE).write_text(json.dumps(
                    {name: p.pid for name, p in cluster.processes.items()}))
            cluster.wait_for_statistics()
        existing = set(cluster.command("osd pool ls", format="json"))
        for pool in pools:
            if pool not in existing:
                cluster.create_pool(pool)
        for client in clients:
            cluster.add_client(client, pools or None)
    except BaseException:
        if not reused:
            cluster.processes.clear()
            stop_directory(directory)
        raise
    finally:
        if cluster._rados is not None:
            cluster._rados.shutdown()
    return reused


def main(argv: list[str] | None = None) -> int:
    """A one-node cluster in a directory that outlives this command; errors are one line."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m volume_manage.operations.cephcluster",
        description="A one-node Ceph cluster (memstore: its data lives in the OSD's memory "
                    "and goes with it) in DIR, on 127.0.0.1, cephx on.")
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("directory", metavar="DIR", type=Path)
    parser.add_argument("--pool", action="append", default=[],
                        help="start: an RBD pool to have (again for more)")
    parser.add_argument("--client", action="append", default=[],
                        help="start: a client with only `profile rbd` rights on the pools; "
                             "its keyring is DIR/client.<name>.keyring")
    args = parser.parse_args(argv)
    directory: Path = args.directory.resolve()
    try:
        if args.action == "start":
            reused = start_directory(directory, args.pool, args.client)
            print(f"ceph cluster {'reused' if reused else 'started'} in {directory} "
                  f"(conf {directory / 'ceph.conf'})")
        elif args.action == "stop":
            stopped = stop_directory(directory)
            print(f"ceph cluster in {directory}: "
                  + (f"stopped {', '.join(stopped)}" if stopped else "not running"))
        else:
            running = running_daemons(directory)
            print(f"ceph cluster in {directory}: "
                  + (", ".join(f"{n} (pid {p})" for n, p in running.items()) or "not running"))
            return 0 if set(running) == set(DAEMON_ORDER) else 3
    except (CephError, OSError, ImportError, subprocess.CalledProcessError) as err:
        print(f"cephcluster {args.action}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
