"""The `hourbridge` command: one module per command group, wired together in ``app``."""
