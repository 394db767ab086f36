"""Trial state to bytes and back (``torch.save`` format), so a checkpoint can travel or be written anywhere.

torch loads on the first call, not at import: the Reporter protocol (and so reading and checking a config) needs
this module but not torch.
"""

from __future__ import annotations

import io
from typing import Any, Mapping


def state_to_bytes(state: Mapping[str, Any]) -> bytes:
    """Serialise a trial state (tensors, numbers, RNG states) — a deep copy by construction."""
    import torch

    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    return buffer.getvalue()


def state_from_bytes(data: bytes) -> dict[str, Any]:
    import torch

    # weights_only=True: a checkpoint is data, never code to run.
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
