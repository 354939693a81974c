"""hourbridge mappings: a pure rules engine from time entries to project codes."""
