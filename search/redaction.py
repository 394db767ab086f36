"""Credentials never leave the machine in logs: values whose names look like secrets, and passwords inside URLs,
are replaced before anything reaches MLflow, Parquet or the console.

The experiment's own files (``config.yaml``, the journals, ``state.json``) keep the real values: they are the
user's inputs on the user's disk, and resuming or testing an experiment needs them.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

REDACTED = "***"
# a name part: token, password, secret, key, credential(s), auth — api_key, db.password, GITHUB_TOKEN, secret_key …
_SECRET_NAME = re.compile(r"(^|[._\-])(token|password|passwd|pwd|secret|key|credentials?|auth)s?($|[._\-])",
                          re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/:@\s]*):(?P<password>[^@/\s]+)@")


def looks_secret(name: str) -> bool:
    """Whether a setting or parameter name looks like it holds a credential.

    >>> [looks_secret(n) for n in ("api_key", "db.password", "GITHUB_TOKEN", "kernel_size", "lr")]
    [True, True, True, False, False]
    """
    return bool(_SECRET_NAME.search(name))


def redact_text(text: str) -> str:
    """Passwords inside URLs replaced: ``https://me:pw@host`` → ``https://me:***@host``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)


def redact_value(name: str, value: Any) -> Any:
    if looks_secret(name) and value is not None:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return redact(value)
    if isinstance(value, list):
        return [redact_value(name, v) for v in value]
    return value


def redact(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``mapping`` (nested) with secret-looking names' values and URL passwords replaced."""
    return {key: redact_value(str(key), value) for key, value in mapping.items()}
