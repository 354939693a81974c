"""hourbridge sync: the only stateful layer (settings, ledger, runs, reports, CLI)."""
