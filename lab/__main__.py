"""python3 -m lab COMMAND: the lab's entry point (scripts/lab.sh runs this)."""
import sys

from lab.cli import main

sys.exit(main(sys.argv[1:]))
