"""Storage backends (drivers). They know nothing of Temporal: activities call them."""
