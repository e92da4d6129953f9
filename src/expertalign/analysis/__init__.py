"""Analyses of expert sets beyond alignment with MEN, on plain numpy/pandas inputs.

Inputs everywhere: expert masks bool [concepts, units], AP float32 [concepts, units] (experts are
units with AP > τ, strictly), and a units DataFrame with columns unit, layer, module, kind,
submodule, index (``results/units/{model}.parquet``).

- :mod:`expertalign.analysis.domains` — shared domain cores
- :mod:`expertalign.analysis.domain_null` — the paper's random domains, permutation p-values
- :mod:`expertalign.analysis.domain_graph` — graph of domain concepts by expert overlap
- :mod:`expertalign.analysis.spp` — Semantic Priming Project relation levels
- :mod:`expertalign.analysis.spp_model` — the mixed-effects model of SPP overlap (App. B)
- :mod:`expertalign.analysis.development` — set sizes, stability and location across checkpoints
- :mod:`expertalign.analysis.pilot` — stability of expert sets across folds and set sizes
- :mod:`expertalign.analysis.figures` — matplotlib figures written atomically as PNG
- :mod:`expertalign.analysis.development_figures` — figures across checkpoints (Fig. 6, 7, App. H)

The workflow's jobs that read files, call these and write results are in
:mod:`expertalign.jobs.analysis`. How each follows the paper, and where it departs from it:
``docs/ANALYSES.md``.

Submodules are imported on use (``from expertalign.analysis import domains``) so that importing
the package does not pull in matplotlib or statsmodels.
"""

__all__ = [
    "development",
    "development_figures",
    "domain_graph",
    "domain_null",
    "domains",
    "figures",
    "pilot",
    "spp",
    "spp_model",
]
