"""The base of every config section: strict, so typos and NaNs fail where they are read."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from utils.core.errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration problem a user can fix; the message names the key and the valid values."""


class Section(BaseModel):
    # Unknown keys are typos far more often than intent: reject them.
    # NaN/inf pass `gt`/`ge` bounds unnoticed (inf > 0) and poison training: reject them.
    # Enum-typed keys hold their plain string value (YAML, JSON and ZenML see strings).
    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        protected_namespaces=(),
        allow_inf_nan=False,
        use_enum_values=True,
        validate_default=True,
    )
