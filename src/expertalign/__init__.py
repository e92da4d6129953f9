"""expertalign: expert neurons of language models and their alignment with human judgments.

    >>> import torch, expertalign
    >>> scores = torch.tensor([[0.9], [0.1], [0.8]])
    >>> expertalign.average_precision(scores, torch.tensor([True, False, True])).tolist()
    [1.0]

The workflow (``Snakefile``) calls into this package; every step can also be used from Python:
``expertalign.models.load_model`` → ``expertalign.units.find_units`` →
``expertalign.responses.max_pooled_responses`` → ``expertalign.ap`` → ``expertalign.similarity``.
"""

from expertalign.ap import average_precision

__all__ = ["average_precision"]
__version__ = "0.1.0"
