"""What operators run besides the workers: the consistency audit, the dev server, the
UI's codec server."""
