"""The one base of every error a user can fix.

The CLI prints such an error as one line and exits 2; anything else is a bug and keeps its
traceback. Each package raises its own subclass, named for what went wrong.
"""


class UserError(Exception):
    """A problem the user can fix; the message names the key, file or value and the fix."""


def one_line(e: BaseException, *, limit: int | None = None, with_type: bool = False) -> str:
    """`e`'s message as one line: whitespace collapsed, the exception's type where the
    message is empty (or before it, `with_type`), cut to `limit` characters."""
    text = " ".join(str(e).split())
    if not text:
        text = type(e).__name__
    elif with_type:
        text = f"{type(e).__name__}: {text}"
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text
