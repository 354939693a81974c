"""The invoice check: contractors' bills in accounting against the hours they logged, per code and period.

``match`` is the pure matcher (no I/O); ``check`` loads the ledger's hours and the sinks' bills, runs
it and stores the result; ``files`` writes the ``invoice-check-<period>`` report beside the period reports.
"""
