"""`python -m sync.cli`: the hourbridge command."""

from sync.cli.app import main

main()
