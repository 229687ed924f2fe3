"""Run a worker: the API/scheduler worker, or one storage backend's worker.

    python worker.py api
    python worker.py backend --backend-host node1@file#pool --driver file --path DIR

Everything it builds lives in volume_manage.workers; `--help` lists the options.
"""

from volume_manage.workers.cli import main

if __name__ == "__main__":
    main()
