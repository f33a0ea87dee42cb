"""The Hugging Face token, read where a step runs: HF_TOKEN, else a ZenML secret.

Only the secret's NAME travels in the config (and so in step parameters and metadata); the
value is fetched at run time on the machine that needs it and handed straight to
`from_pretrained`. Nothing here logs or returns it anywhere else.
"""

from __future__ import annotations

import os

from utils.core.errors import UserError

SECRET_KEY = "token"


class SecretError(UserError, RuntimeError):
    """The configured secret is missing or has no `token` key."""


def hf_token(secret_name: str | None) -> str | None:
    """HF_TOKEN from the environment, else the `token` of ZenML secret `secret_name`.

    None when neither is set: public models need no token.
    """
    env = os.environ.get("HF_TOKEN")
    if env:
        return env
    if not secret_name:
        return None
    return _secret_token(secret_name)


def check_hf_secret(secret_name: str) -> None:
    """Raise SecretError now, not in a remote step later, if the secret cannot be read."""
    _secret_token(secret_name)


def _secret_token(secret_name: str) -> str:
    from zenml.client import Client

    try:
        # Exact names only: a prefix match could hand over another secret's value.
        secret = Client().get_secret(
            secret_name, allow_partial_name_match=False, allow_partial_id_match=False
        )
    except KeyError:
        raise SecretError(
            f"ZenML secret {secret_name!r} (model.hf_token_secret) not found; create it with "
            f"`zenml secret create {secret_name} --{SECRET_KEY}=<your HF token>` "
            "or set HF_TOKEN"
        ) from None
    value = secret.secret_values.get(SECRET_KEY)
    if not value:
        raise SecretError(
            f"ZenML secret {secret_name!r} has no {SECRET_KEY!r} key "
            f"(keys: {sorted(secret.secret_values)})"
        )
    return str(value)
