"""The data errors a user can fix; every data module raises these."""

from __future__ import annotations

from utils.core.errors import UserError


class DataError(UserError, ValueError):
    """A data problem a user can fix: the message names the file, split or column."""
