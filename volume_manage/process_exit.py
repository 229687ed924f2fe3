"""Leave a process that used the Temporal SDK without the interpreter's own shutdown.

The SDK's runtime can abort that shutdown (SIGABRT in PyGILState_Release, a known SDK
issue, seen on Python 3.11): a clean exit 0 or 2 became -6 and a core-dump notice. The
entry points (starter.py, worker.py, `python -m volume_manage.rest`, bench.workers) run
their work, flush their output and leave with their own exit code instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn


def run_then_exit(main: Callable[[], object]) -> NoReturn:
    """Run `main`; exit with the code it returns or raises (SystemExit), skipping shutdown."""
    try:
        result = main()
        code = result if isinstance(result, int) else 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def program_name() -> str:
    """How the user called us, for usage lines: `starter.py`, or a console script's name."""
    return Path(sys.argv[0]).name
