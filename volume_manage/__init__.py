"""volume-manage: adopt storage objects that already exist on a backend into a block-storage
inventory, as durable Temporal workflows. See docs/architecture.md for the layout."""
