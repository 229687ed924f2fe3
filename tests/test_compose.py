"""docker-compose.yml, checked without a Docker engine: Debian's docker-compose validates and
resolves it offline; the commands it runs must parse with worker.py's and the REST API's
real flags; the search attributes and dynamic config it sets up must be the ones the
workflows need (volume_manage/shared/search.py). The search-attribute script itself runs
against a real dev server with the `temporal` CLI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml  # type: ignore[import-untyped]

from volume_manage.operations.devserver import free_port, temporal_binary
from volume_manage.shared import search
from volume_manage.shared.validation import HOST_PATTERN
from volume_manage.workers import build, cli

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
MARIADB_OVERRIDE = ROOT / "deploy" / "compose" / "mariadb.yml"
SERVICES = {"postgresql", "temporal-schema", "temporal", "temporal-setup", "temporal-ui",
            "inventory-migrate", "api-worker", "backend-file", "backend-rbd", "rest-api",
            "keystone", "rest-api-keystone", "rabbitmq"}
APP_SERVICES = {"inventory-migrate", "api-worker", "backend-file", "backend-rbd", "rest-api"}
LONG_RUNNING = ("api-worker", "backend-file", "backend-rbd", "rest-api")

pytestmark = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                reason="docker-compose is not installed (scripts/setup.sh)")


def resolve(*overrides: Path, **variables: str) -> dict[str, Any]:
    """The file as docker-compose resolves it (anchors merged, variables and defaults
    filled in; every profile's services included), with `overrides` laid over it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RBD_")}
    files = [arg for path in (COMPOSE, *overrides) for arg in ("-f", str(path))]
    result = subprocess.run(["docker-compose", *files, "config"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={**env, **variables})
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    return resolved


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return resolve()


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's volumes (short "src:dst:mode" or long form)."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        found[target] = source
    return found


def test_compose_file_validates() -> None:
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_every_part_of_the_stack_is_there(config: dict[str, Any]) -> None:
    services: dict[str, Any] = config["services"]
    assert set(services) == SERVICES
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    assert services["temporal-schema"]["image"].startswith("temporalio/admin-tools:")
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    for name in APP_SERVICES:
        assert services[name]["image"] == "volume-manage:latest"
        assert services[name]["build"]["context"] == str(ROOT)
        env = services[name]["environment"]
        assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert services["inventory-migrate"]["command"] == ["python", "starter.py", "migrate"]
    for name in LONG_RUNNING:
        port = next(iter(published(services[name]).values()))
        assert f"'127.0.0.1', {port}" in " ".join(services[name]["healthcheck"]["test"])
    assert mounts(services["backend-file"]) == {"/srv/volumes": "backend-volumes"}
    assert "backend-volumes" in config["volumes"]


def test_one_shot_steps_run_in_order(config: dict[str, Any]) -> None:
    services = config["services"]

    def waits_for(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    assert waits_for("temporal") == {"temporal-schema": "service_completed_successfully"}
    assert waits_for("temporal-setup") == {"temporal": "service_healthy"}
    for name in LONG_RUNNING:
        assert waits_for(name) == {"temporal-setup": "service_completed_successfully",
                                   "inventory-migrate": "service_completed_successfully"}


def published(service: dict[str, Any]) -> dict[int, int]:
    return {int(p["published"]): int(p["target"]) for p in service.get("ports", [])}


def test_ports(config: dict[str, Any]) -> None:
    services = config["services"]
    assert published(services["temporal"]) == {7233: 7233}
    assert published(services["temporal-ui"]) == {8080: 8080}
    assert published(services["rest-api"]) == {8776: 8776}
    assert published(services["api-worker"]) == {9464: 9464}
    assert published(services["backend-file"]) == {9465: 9464}
    assert published(services["backend-rbd"]) == {9466: 9464}
    assert published(services["rabbitmq"]) == {5672: 5672}
    assert "ports" not in services["postgresql"]
    everything = [port for s in services.values() for port in published(s)]
    assert len(everything) == len(set(everything)), "two services publish one port"


@pytest.mark.parametrize("name", ["api-worker", "backend-file", "backend-rbd"])
def test_worker_commands_parse_with_worker_py_flags(config: dict[str, Any], name: str) -> None:
    """Parse the service's command with worker.py's own (click) command: an unknown or
    misspelt flag, a bad value type or a missing required option fails here."""
    command: list[str] = config["services"][name]["command"]
    assert command[:2] == ["python", "worker.py"]
    group = typer.main.get_command(cli.app)
    sub = group.commands[command[2]]  # type: ignore[attr-defined]
    ctx = sub.make_context(command[2], list(command[3:]))
    params = ctx.params
    assert params["metrics_port"] == 9464
    assert params["log_format"] == "json"
    service = config["services"][name]
    if command[2] == "backend":
        assert HOST_PATTERN.match(params["backend_host"])
        if params["driver"] == "file":
            assert params["path"] in mounts(service)
        else:
            assert params["driver"] == "rbd"
            # the driver's options come from the environment, under the names it reads
            rbd_env = {k: v for k, v in service["environment"].items() if k.startswith("RBD_")}
            readable = {p.envvar for p in sub.params if isinstance(p.envvar, str)}
            assert set(rbd_env) <= readable
            assert {rbd_env["RBD_CEPH_CONF"], rbd_env["RBD_KEYRING"]} <= set(mounts(service))
            assert rbd_env["RBD_POOL"] == params["backend_host"].split("#")[1]
    grace = config["services"][name]["stop_grace_period"]
    assert int(grace.rstrip("s")) > build.DRAIN_TIMEOUT.total_seconds()


def test_rest_command_uses_the_rest_api_flags(
    config: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    command: list[str] = config["services"]["rest-api"]["command"]
    assert command[:3] == ["python", "-m", "volume_manage.rest"]
    from volume_manage.rest.__main__ import main as rest_main
    with pytest.raises(SystemExit):
        rest_main(["--help"])
    usage = capsys.readouterr().out
    for flag in (arg for arg in command[3:] if arg.startswith("--")):
        assert flag in usage, f"python -m volume_manage.rest has no {flag}"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "8776"


def registered_in_compose(config: dict[str, Any]) -> dict[str, str]:
    text: str = config["services"]["temporal-setup"]["environment"]["SEARCH_ATTRIBUTES"]
    return dict(pair.split("=", 1) for pair in text.split())


def test_search_attributes_and_dynamic_config_match_the_code(config: dict[str, Any]) -> None:
    assert registered_in_compose(config) == search.REGISTERED
    server = config["services"]["temporal"]
    path = server["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    assert path.startswith("config/dynamicconfig/")
    source = mounts(server)["/etc/temporal/config/dynamicconfig"]
    values = yaml.safe_load((Path(source) / Path(path).name).read_text())
    for key, value in search.DYNAMIC_CONFIG.items():
        assert values[key][0]["value"] == value


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A dev server that knows none of our search attributes, as a fresh Temporal does."""
    port = free_port()
    log = tmp_path_factory.mktemp("bare") / "temporal.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [temporal_binary(), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port),
             "--headless", "--log-level", "warn"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_setup_script_registers_the_search_attributes(
    config: dict[str, Any], bare_server: str
) -> None:
    """deploy/temporal/setup-namespace.sh, run twice (a restarted one-shot) with the `temporal`
    CLI against a real server: every attribute registered once, with its type."""
    env = {**os.environ, "TEMPORAL_ADDRESS": bare_server, "NAMESPACE": "default",
           "SEARCH_ATTRIBUTES": " ".join(f"{k}={v}" for k, v in
                                         registered_in_compose(config).items()),
           "PATH": f"{Path(temporal_binary()).parent}{os.pathsep}{os.environ['PATH']}"}
    script = str(ROOT / "deploy" / "temporal" / "setup-namespace.sh")
    for _ in range(2):
        result = subprocess.run(["sh", script], env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
    assert "already registered" in result.stdout
    listing = subprocess.run(
        [temporal_binary(), "operator", "search-attribute", "list", "--address", bare_server,
         "--output", "json"], capture_output=True, text=True, timeout=60, check=True).stdout
    custom: dict[str, str] = json.loads(listing)["customAttributes"]
    # KeywordList -> INDEXED_VALUE_TYPE_KEYWORD_LIST
    assert custom == {name: "INDEXED_VALUE_TYPE_" + re.sub(r"(?<!^)([A-Z])", r"_\1", kind).upper()
                      for name, kind in search.REGISTERED.items()}


def test_image_context_holds_what_pip_install_needs() -> None:
    """The Dockerfile runs `pip install .` on the build context: .dockerignore must not leave
    out a package or module pyproject.toml lists, nor a file the services run."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text()
               .splitlines() if line.strip() and not line.startswith("#")}
    included = project["packages"]["find"]["include"]
    needed = {package.split(".")[0].rstrip("*") for package in included}
    needed |= {f"{module}.py" for module in project["py-modules"]}
    needed |= {"pyproject.toml", "deploy"}
    assert not needed & ignored
    assert all((ROOT / name).exists() for name in needed)
    # nor what the installed project does not need: benchmarks, tests, scripts
    assert {"bench", "tests", "scripts"} <= ignored
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "qemu-utils" in dockerfile and "pip install ." in dockerfile
    # the rbd worker's bindings: Debian's, linked in by setup.sh's rule, the build failing
    # if they do not import
    assert "python3-rados python3-rbd" in dockerfile
    assert "python -m volume_manage.operations.cephbindings --require" in dockerfile
    # and the rbd driver's helper, built from the installed package's source
    assert "libradospp-dev" in dockerfile
    assert "python -m volume_manage.drivers.rbd_fastpath --build --require" in dockerfile
    assert "volume_manage.operations.cephbindings" in (ROOT / "scripts/setup.sh").read_text()


def test_the_rbd_worker_is_optional_and_mounts_the_hosts_ceph_files(
        config: dict[str, Any]) -> None:
    """Only `--profile rbd` starts it; the conf and keyring come read-only from the host,
    from /etc/ceph by default or where the variables say."""
    services = config["services"]
    assert services["backend-rbd"]["profiles"] == ["rbd"]
    assert {name: s["profiles"] for name, s in services.items() if "profiles" in s} == {
        "backend-rbd": ["rbd"], "rabbitmq": ["notifications"],
        "keystone": ["keystone"], "rest-api-keystone": ["keystone"]}
    assert mounts(services["backend-rbd"]) == {
        "/etc/ceph/ceph.conf": "/etc/ceph/ceph.conf",
        "/etc/ceph/keyring": "/etc/ceph/ceph.client.cinder.keyring"}
    assert all(str(v).endswith(":ro") for v in services["backend-rbd"]["volumes"])
    moved = resolve(RBD_CONF_ON_HOST="/srv/ceph/prod.conf", RBD_USER="vm",
                    RBD_KEYRING_ON_HOST="/srv/ceph/client.vm.keyring", RBD_POOL="pool2",
                    RBD_BACKEND_HOST="node4@rbd#pool2")["services"]["backend-rbd"]
    assert mounts(moved) == {"/etc/ceph/ceph.conf": "/srv/ceph/prod.conf",
                             "/etc/ceph/keyring": "/srv/ceph/client.vm.keyring"}
    assert (moved["environment"]["RBD_USER"], moved["environment"]["RBD_POOL"]) == (
        "vm", "pool2")
    assert "node4@rbd#pool2" in moved["command"]


def test_the_mariadb_override_moves_only_the_inventory(config: dict[str, Any]) -> None:
    """`-f deploy/compose/mariadb.yml`: every project service's DATABASE_URL is MariaDB's,
    the migration waits for it, Temporal keeps PostgreSQL, nothing else changes."""
    with_mariadb = resolve(MARIADB_OVERRIDE)
    services = with_mariadb["services"]
    assert set(services) == SERVICES | {"mariadb"}
    assert services["mariadb"]["image"].startswith("mariadb:")
    assert "ports" not in services["mariadb"]
    assert "--collation-server=utf8mb4_nopad_bin" in services["mariadb"]["command"]
    assert mounts(services["mariadb"]) == {"/var/lib/mysql": "mariadb-data"}
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["DATABASE_URL"] == "mysql+pymysql://inventory:inventory@mariadb:3306/inventory"
        assert env["TEMPORAL_ADDRESS"] == "temporal:7233"  # merged, not replaced
        assert services[name].get("profiles") == config["services"][name].get("profiles")
    assert services["inventory-migrate"]["depends_on"]["mariadb"]["condition"] == "service_healthy"
    assert services["temporal"]["environment"] == config["services"]["temporal"]["environment"]
    for name in SERVICES - APP_SERVICES:
        assert services[name] == config["services"][name]


def test_keystone_is_optional_and_the_api_beside_it_authenticates_by_it(
        config: dict[str, Any]) -> None:
    """`--profile keystone`: a Keystone and a second REST API with `--auth keystone` whose
    service user is the one the Keystone service makes."""
    services = config["services"]
    keystone, api = services["keystone"], services["rest-api-keystone"]
    assert keystone["profiles"] == api["profiles"] == ["keystone"]
    assert api["command"][-2:] == ["--auth", "keystone"]
    env = api["environment"]
    assert env["VOLUME_API_KEYSTONE_AUTH_URL"] == "http://keystone:5000/v3"
    assert env["VOLUME_API_KEYSTONE_PASSWORD"] == keystone["environment"][
        "KEYSTONE_SERVICE_PASSWORD"]
    assert "http://rest-api-keystone:8777" in keystone["command"]


def test_notifications_are_the_api_workers_and_off_unless_wired(
        config: dict[str, Any]) -> None:
    """The `notifications` profile's RabbitMQ, and VOLUME_MANAGE_TRANSPORT_URL on the API
    worker alone: empty (off) by default, the broker's URL (its own user: RabbitMQ lets
    `guest` in from the loopback only) when set as docs/operations.md says. The API worker
    does not depend on the broker: the relay retries until it answers."""
    services = config["services"]
    assert services["api-worker"]["environment"]["VOLUME_MANAGE_TRANSPORT_URL"] == ""
    assert "rabbitmq" not in services["api-worker"]["depends_on"]
    for name in APP_SERVICES - {"api-worker"}:
        assert "VOLUME_MANAGE_TRANSPORT_URL" not in services[name]["environment"]
    broker = services["rabbitmq"]
    assert broker["image"].startswith("rabbitmq:")
    assert "rabbitmq-diagnostics" in broker["healthcheck"]["test"]
    assert mounts(broker) == {"/var/lib/rabbitmq": "rabbitmq-data"}
    user, password = (broker["environment"][f"RABBITMQ_DEFAULT_{k}"] for k in ("USER", "PASS"))
    assert user != "guest"
    url = f"rabbit://{user}:{password}@rabbitmq:5672/"
    for doc in (ROOT / "docs" / "operations.md", COMPOSE):  # the URLs they tell users to set
        assert set(re.findall(r"rabbit://\S*@rabbitmq\S*", doc.read_text())) == {url}, doc
    wired = resolve(VOLUME_MANAGE_TRANSPORT_URL=url)["services"]["api-worker"]
    assert wired["environment"]["VOLUME_MANAGE_TRANSPORT_URL"] == url
    assert wired["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"  # merged, not replaced


def test_backend_workers_have_no_transport_url_flag() -> None:
    """Only the API worker sends notifications: a backend worker given --transport-url
    refuses it instead of ignoring it."""
    group = typer.main.get_command(cli.app)
    options = {name: {o for p in command.params for o in p.opts}
               for name, command in group.commands.items()}  # type: ignore[attr-defined]
    assert {"--transport-url", "--notification-topic"} <= options["api"]
    assert not {"--transport-url", "--notification-topic"} & options["backend"]
