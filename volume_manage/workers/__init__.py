"""Building and running the workers: the API worker and one worker per storage backend."""
