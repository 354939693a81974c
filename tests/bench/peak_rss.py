"""Run one command and report its own peak RSS, untouched by the memory of the process that started us.

Linux records a process's peak RSS across ``exec`` starting from what it had right after ``fork``, and
a forked child starts with its parent's pages: a command started straight from the benchmark (which
holds the whole sandbox data set) would report the benchmark's size, not its own. This launcher is
small when it forks, so the command's figure is the command's. It imports nothing beyond the stdlib.

    python peak_rss.py REPORT_FILE -- COMMAND [ARGS...]

writes ``{"returncode": int, "max_rss_kib": int}`` to REPORT_FILE and exits with the command's code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    report, command = argv[0], argv[2:]
    child = subprocess.Popen(command)
    # wait4 gives this one child's rusage; RUSAGE_CHILDREN would be the largest of all of them.
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = returncode = os.waitstatus_to_exitcode(status)
    with open(report, "w", encoding="utf-8") as handle:
        json.dump({"returncode": returncode, "max_rss_kib": usage.ru_maxrss}, handle)
    return returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
