"""python3 -m lab COMMAND: the lab's entry point (scripts/lab.sh runs this)."""
import os
import sys

from lab.cli import main

# Commands that only print: when their reader stops early (make status | head) they have done
# all they were asked, so they end with 0 and make prints no error under the reader's lines.
READ_ONLY = ("status", "help", "-h", "--help")

try:
    code = main(sys.argv[1:])
    sys.stdout.flush()
except BrokenPipeError:
    # The reader went away: end quietly, with no traceback.  Python flushes stdout once more on
    # exit and would fail again, so stdout is pointed at /dev/null first.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    command = sys.argv[1] if len(sys.argv) > 1 else "help"
    code = 0 if command in READ_ONLY else 141  # 141: 128 + SIGPIPE, as a shell reports it
sys.exit(code)
