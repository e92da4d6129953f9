"""expertalign: expert neurons of language models and their alignment with human judgments.

    >>> import torch, expertalign
    >>> scores = torch.tensor([[0.9], [0.1], [0.8]])
    >>> expertalign.average_precision(scores, torch.tensor([True, False, True])).tolist()
    [1.0]

The workflow (``Snakefile``) calls into this package; every step can also be used from Python:
``expertalign.models.load_model`` → ``expertalign.units.find_units`` →
``expertalign.responses.max_pooled_responses`` → ``expertalign.ap`` → ``expertalign.similarity``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["average_precision"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported on first use: torch and numba cost every workflow job a second or two, and the
    # statistics and figure jobs never need them.
    if name == "average_precision":
        from expertalign.ap import average_precision

        return average_precision
    raise AttributeError(f"module 'expertalign' has no attribute {name!r}")
