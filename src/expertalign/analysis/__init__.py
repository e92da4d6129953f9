"""Analyses of expert sets beyond alignment with MEN, on plain numpy/pandas inputs.

Inputs everywhere: expert masks bool [concepts, units], AP float32 [concepts, units] (experts are
units with AP > τ, strictly), and a units DataFrame with columns unit, layer, module, kind,
submodule, index (``results/units/{model}.parquet``).

- :mod:`expertalign.analysis.domains` — shared domain cores vs random pseudo-domains, graph
- :mod:`expertalign.analysis.spp` — Semantic Priming Project relation levels, mixed-effects model
- :mod:`expertalign.analysis.development` — set sizes, stability and location across checkpoints
- :mod:`expertalign.analysis.pilot` — stability of expert sets across folds and set sizes
- :mod:`expertalign.analysis.figures` — matplotlib figures written atomically as PNG

Submodules are imported on use (``from expertalign.analysis import domains``) so that importing
the package does not pull in matplotlib or statsmodels.
"""

__all__ = ["development", "domains", "figures", "pilot", "spp"]
