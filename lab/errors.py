"""The one exception the lab's library code raises when a command cannot go on.  The command
layer (lab/cli.py, main) prints its message as "lab: MESSAGE" on stderr and exits 1, as die()
does; the library never ends the process itself."""


class Failed(Exception):
    """A step of the lab failed or a precondition does not hold; str() says why and what to do."""
