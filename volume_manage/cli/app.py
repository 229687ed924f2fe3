"""volume-manage CLI: adopt existing backend objects into the inventory and look at them.

    python starter.py manage node1@file#pool source-name=vol-17 --name data --wait
    python starter.py show VOLUME_ID
    python starter.py list --status available
    python starter.py manageable node1@file#pool --detail
    python starter.py bulk-manage node1@file#pool --all --pattern 'db-*'
    python starter.py unmanage VOLUME_ID
    python starter.py delete VOLUME_ID          # the entry of a failed adoption
    python starter.py snapshot-manage VOLUME_ID source-name=snap-1 --wait
    python starter.py snapshots --volume VOLUME_ID
    python starter.py quota PROJECT volumes=500 gigabytes=-1
    python starter.py type-create gold --spec volume_backend_name=file
    python starter.py workflows --volume VOLUME_ID   # its workflows, from Temporal
    python starter.py audit

Connection settings come from TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and DATABASE_URL.
Every command takes --json for scripting. Exit codes: 0 success, 1 the request failed or
was rejected, 2 the tool could not reach Temporal or the database.
"""

from __future__ import annotations

from typing import NoReturn

import typer

from volume_manage.cli import admin, backends, bulk, inspection, snapshots, volumes
from volume_manage.process_exit import program_name, run_then_exit

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__,
                  pretty_exceptions_enable=False)
# One module per group of commands, each going through the SDK object (cli/common.py).
for group in (volumes, snapshots, bulk, backends, admin, inspection):
    group.register(app)


def main() -> NoReturn:
    """Run the CLI and exit with its code (a clean "cannot reach Temporal" is 2, not the
    -6 of the SDK's shutdown abort: process_exit.py)."""
    run_then_exit(lambda: app(prog_name=program_name()))
