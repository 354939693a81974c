"""hourbridge connectors: the only code that talks to third-party APIs."""
