"""numpy in, numpy or torch out: the package runs with or without torch installed."""

from __future__ import annotations

import numpy as np


def is_torch(x) -> bool:
    """True for a torch.Tensor, without importing torch when it is not loaded already."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def to_numpy(x, dtype) -> np.ndarray:
    """A host numpy copy-or-view of a numpy array, a torch tensor (any device) or a list."""
    if is_torch(x):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def like(result: np.ndarray, template):
    """``result`` as a torch tensor (on the host) when ``template`` is one, else as numpy."""
    if is_torch(template):
        import torch  # noqa: PLC0415 - only when the caller already uses torch

        return torch.from_numpy(np.ascontiguousarray(result))
    return result
