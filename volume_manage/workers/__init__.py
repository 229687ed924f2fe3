"""The worker processes: the API/scheduler worker and one worker per storage backend.

- `build`: the workers themselves (task queue, workflows, activities, concurrency limits);
- `service`: a backend worker's service row, the scheduler's view of it, kept fresh;
- `observing`: metrics endpoint, log format and tracing of a worker process;
- `running`: connect (waiting for Temporal), run until SIGINT/SIGTERM, drain;
- `cli`: the command line (`python worker.py api|backend`, `volume-manage-worker`).
"""
