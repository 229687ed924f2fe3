"""The Cinder-compatible REST API (Block Storage API v3) over the workflows."""
