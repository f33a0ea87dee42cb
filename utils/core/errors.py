"""The one base of every error a user can fix.

The CLI prints such an error as one line and exits 2; anything else is a bug and keeps its
traceback. Each package raises its own subclass, named for what went wrong.
"""


class UserError(Exception):
    """A problem the user can fix; the message names the key, file or value and the fix."""
