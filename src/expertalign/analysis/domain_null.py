"""The domain baselines: permutation nulls of the shares of :mod:`expertalign.analysis.domains`.

Usage::

    from expertalign.analysis import domain_null, domains

    parsed = domains.parse_domains(concepts, table)
    observed = domains.domain_shares(masks, concepts, table)
    null = domain_null.keep_broader_domains(masks, parsed, n_perm=10000, seed=0)
    # or whole pseudo-domains: domain_null.random_domains_matched(masks, parsed, 10000, 0,
    #                                                             domains.non_domain_rows(...))
    result = domain_null.permutation_pvalues(observed, null)  # adds p_core_share, ...
    mean = domain_null.mean_over_domains(observed, null)      # the paper's averages, with p

(every name here is also importable from :mod:`expertalign.analysis.domains`.)

Baselines. The paper's (:func:`keep_broader_domains`, the default): every domain keeps its real
broader concept, and as many specific concepts as it has are drawn from all concepts; one draw
per domain per permutation, so the mean over domains gets a p-value too. The alternative
(:func:`random_domains_matched`, built on :func:`random_domains`): whole pseudo-domains, the
"broader" concept drawn as well, from the concepts in no domain, again one per domain per
permutation with that domain's number of specific concepts. The number matters: the core of 2
random sets is far larger than the core of 4, so a domain must be compared with pseudo-domains of
its own size (a 2-specific domain against 4-specific draws looks significant when it is not).
The permutation p-value of an observed share is (1 + #{null ≥ observed}) / (1 + #null), over the
null draws where the share is defined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from expertalign.apmatrix import PackedMasks, as_packed

if TYPE_CHECKING:
    from expertalign.analysis.domains import Domain

__all__ = [
    "random_domains",
    "random_domains_matched",
    "keep_broader_domains",
    "permutation_pvalues",
    "mean_over_domains",
]

# bytes of packed masks processed at once in random_domains
_BLOCK_BYTES = 32_000_000


def _shares(
    n_union: NDArray[np.int64], n_core: NDArray[np.int64], n_core_broader: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    with np.errstate(invalid="ignore", divide="ignore"):
        core_share = np.where(n_union > 0, n_core / np.maximum(n_union, 1), 0.0)
        broader_share = np.where(n_core > 0, n_core_broader / np.maximum(n_core, 1), np.nan)
    return core_share.astype(np.float64), broader_share.astype(np.float64)


def random_domains(
    masks: ArrayLike,
    n_perm: int = 10000,
    seed: int = 0,
    candidates: ArrayLike | None = None,
    n_specific: int | Sequence[int] = 4,
) -> pd.DataFrame:
    """Shares of ``n_perm`` random pseudo-domains (``n_specific`` specific + 1 broader concept).

    ``candidates`` are the mask rows to draw from (default: all rows; pass
    :func:`non_domain_rows` to draw from concepts in no domain). ``n_specific`` is one number for
    every draw or one per draw (``n_perm`` numbers), e.g. the sizes of the domains the draws are
    compared with. Returns ``perm, n_specific, specific_rows, broader_row, n_union, n_core,
    core_share, n_core_in_broader, broader_share``.

    Every draw takes ``max(n_specific) + 1`` distinct candidates in random order (so the draws
    with a single ``n_specific`` are what they were before per-draw sizes existed); a draw with
    ``k`` specific concepts keeps the first ``k`` as specific and the last as broader, a uniform
    draw of ``k + 1`` distinct candidates.
    """
    m = as_packed(masks)
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, not {n_perm}")
    ks = np.asarray(n_specific, dtype=np.intp)
    if ks.ndim == 0:
        ks = np.full(n_perm, ks, dtype=np.intp)
    if ks.shape != (n_perm,):
        raise ValueError(f"n_specific must be one number or {n_perm} (one per draw), has {ks.size}")
    if ks.min() < 2:
        raise ValueError(f"n_specific must be >= 2, not {int(ks.min())}")
    kmax = int(ks.max())
    cand = np.arange(m.shape[0]) if candidates is None else np.asarray(candidates, dtype=np.intp)
    k = kmax + 1
    if cand.size < k:
        raise ValueError(
            f"need at least {k} candidate concepts for a pseudo-domain, have {cand.size}"
        )
    rng = np.random.default_rng(seed)
    # argsort of uniform keys = a uniform random permutation; its first k entries are a uniform
    # draw of k distinct candidates (first kmax specific, last broader)
    draws = np.empty((n_perm, k), dtype=np.intp)
    for start in range(0, n_perm, 1000):
        stop = min(n_perm, start + 1000)
        keys = rng.random((stop - start, cand.size))
        draws[start:stop] = cand[np.argpartition(keys, k - 1, axis=1)[:, :k]]
        # argpartition leaves the first k unordered but their selection is still uniform;
        # shuffle so the role (specific vs broader) is not tied to the partition order
        draws[start:stop] = rng.permuted(draws[start:stop], axis=1)

    counts = _count_sized_draws(m, draws, ks)
    return pd.DataFrame(
        {
            "perm": np.arange(n_perm),
            "n_specific": ks.copy(),
            "specific_rows": [tuple(int(x) for x in r[:n]) for r, n in zip(draws, ks)],
            "broader_row": draws[:, kmax],
            **counts,
        }
    )


def random_domains_matched(
    masks: ArrayLike,
    domains: Sequence[Domain],
    n_perm: int = 10000,
    seed: int = 0,
    candidates: ArrayLike | None = None,
) -> pd.DataFrame:
    """Whole pseudo-domains (:func:`random_domains`), one per domain per permutation, each with as
    many specific concepts as its domain has, so the mean over the domains of each permutation is
    the null of the observed mean (:func:`mean_over_domains`).

    Returns :func:`random_domains`' columns plus ``domain``; rows are permutation-major (perm 0's
    draw for every domain, then perm 1's, ...). Draws for domains of one size are exchangeable
    (nothing of the domain is kept), so :func:`permutation_pvalues` of the frame without its
    ``domain`` column compares each domain with every draw of its size.
    """
    if not domains:
        raise ValueError("no domains to draw for")
    sizes = [len(d.specific) for d in domains]
    draws = random_domains(
        masks,
        n_perm=n_perm * len(domains),
        seed=seed,
        candidates=candidates,
        n_specific=sizes * n_perm,
    )
    draws["perm"] = np.repeat(np.arange(n_perm), len(domains))
    draws.insert(1, "domain", [d.name for d in domains] * n_perm)
    return draws


def _count_sized_draws(
    m: PackedMasks, draws: NDArray[np.intp], ks: NDArray[np.intp]
) -> dict[str, NDArray]:
    """:func:`_count_draws` for draws of ``max(ks)`` specific rows then the broader row, of which
    draw i uses its first ``ks[i]`` specific rows."""
    kmax = draws.shape[1] - 1
    if (ks == kmax).all():
        return _count_draws(m, draws, kmax)
    out: dict[str, NDArray] = {}
    for k in np.unique(ks):
        idx = np.flatnonzero(ks == k)
        sub = np.concatenate([draws[idx, :k], draws[idx, kmax:]], axis=1)
        for name, values in _count_draws(m, sub, int(k)).items():
            if name not in out:
                out[name] = np.empty(len(ks), dtype=values.dtype)
            out[name][idx] = values
    return out


def _count_draws(m: PackedMasks, draws: NDArray[np.intp], n_specific: int) -> dict[str, NDArray]:
    """Union, core and core-in-broader counts and shares of pseudo-domains: rows of ``draws``
    are ``n_specific`` specific rows then the broader row (-1: none, broader share nan)."""
    n_perm, k = draws.shape
    packed = m.bits  # 8 units per byte; padding bits are 0 and never counted
    row_bytes = max(1, packed.shape[1])
    block = max(1, _BLOCK_BYTES // (row_bytes * k))
    n_union = np.empty(n_perm, dtype=np.int64)
    n_core = np.empty(n_perm, dtype=np.int64)
    n_cb = np.empty(n_perm, dtype=np.int64)
    for start in range(0, n_perm, block):
        sl = slice(start, min(n_perm, start + block))
        spec = packed[draws[sl, :n_specific]]  # [b, n_specific, bytes]
        core = np.bitwise_and.reduce(spec, axis=1)
        union = np.bitwise_or.reduce(spec, axis=1)
        n_core[sl] = np.bitwise_count(core).sum(axis=1)
        n_union[sl] = np.bitwise_count(union).sum(axis=1)
        n_cb[sl] = np.bitwise_count(core & packed[draws[sl, n_specific]]).sum(axis=1)
    core_share, broader_share = _shares(n_union, n_core, n_cb)
    broader_share[draws[:, n_specific] < 0] = np.nan
    return {
        "n_union": n_union,
        "n_core": n_core,
        "core_share": core_share,
        "n_core_in_broader": n_cb,
        "broader_share": broader_share,
    }


def keep_broader_domains(
    masks: ArrayLike,
    domains: Sequence[Domain],
    n_perm: int = 10000,
    seed: int = 0,
) -> pd.DataFrame:
    """The paper's baseline: each domain keeps its real broader concept and gets as many specific
    concepts as it has (``len(d.specific)``; the paper's domains have 4) drawn uniformly from all
    concepts (distinct, never the broader itself), e.g. "animal" with jacket, liver, doctor, red.
    Every permutation draws one pseudo-domain per domain, so the mean over domains has a null
    too (:func:`mean_over_domains`), made of draws of the domains' own sizes.

    Returns ``perm, domain, n_specific, specific_rows, broader_row, n_union, n_core, core_share,
    n_core_in_broader, broader_share`` (n_perm rows per domain).
    """
    m = as_packed(masks)  # once, not per domain
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, not {n_perm}")
    n = m.shape[0]
    rng = np.random.default_rng(seed)
    frames = []
    for d in domains:
        n_specific = len(d.specific)
        broader = -1 if d.broader is None else int(d.broader)
        cand = np.array([i for i in range(n) if i != broader], dtype=np.intp)
        if cand.size < n_specific:
            raise ValueError(
                f"domain {d.name!r}: need at least {n_specific} concepts to draw "
                f"its specific ones from, have {cand.size}"
            )
        # the keys do not depend on n_specific: every domain consumes the generator alike
        draws = np.empty((n_perm, n_specific + 1), dtype=np.intp)
        draws[:, n_specific] = broader
        for start in range(0, n_perm, 1000):
            stop = min(n_perm, start + 1000)
            keys = rng.random((stop - start, cand.size))
            pick = np.argpartition(keys, n_specific - 1, axis=1)[:, :n_specific]
            draws[start:stop, :n_specific] = cand[pick]
        frame = pd.DataFrame(
            {
                "perm": np.arange(n_perm),
                "domain": d.name,
                "n_specific": n_specific,
                "specific_rows": [tuple(int(x) for x in r) for r in draws[:, :n_specific]],
                "broader_row": draws[:, n_specific],
                **_count_draws(m, draws, n_specific),
            }
        )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _perm_p(observed: float, null: NDArray[np.float64]) -> tuple[float, int]:
    valid = null[np.isfinite(null)]
    if not np.isfinite(observed) or valid.size == 0:
        return np.nan, int(valid.size)
    return (1.0 + np.count_nonzero(valid >= observed)) / (1.0 + valid.size), int(valid.size)


def permutation_pvalues(observed: pd.DataFrame, null: pd.DataFrame) -> pd.DataFrame:
    """Add one-sided permutation p-values and null summaries to :func:`domain_shares` output.

    For each share: ``p_<share>`` = (1 + #{null ≥ observed}) / (1 + #null with a defined share),
    ``null_mean_<share>``, ``null_q95_<share>``, ``null_n_<share>``. Each domain is compared with
    the null rows of its ``domain`` when the null has that column, else with the rows of its
    ``n_specific`` when both tables have that column (a domain of 2 specific concepts is never
    compared with draws of 4), else with every row.
    """
    out = observed.copy()
    per_domain = "domain" in null.columns
    per_size = not per_domain and "n_specific" in null.columns and "n_specific" in observed.columns
    for col in ("core_share", "broader_share"):
        if col not in observed.columns or col not in null.columns:
            raise ValueError(f"both tables need column {col!r}")
        ps, ns, means, q95s = [], [], [], []
        for _, row in observed.iterrows():
            if per_domain:
                mine = null[null["domain"] == row["domain"]]
            elif per_size:
                mine = null[null["n_specific"] == row["n_specific"]]
            else:
                mine = null
            if per_domain and mine.empty:
                raise ValueError(f"the null has no draws for domain {row['domain']!r}")
            if per_size and mine.empty:
                raise ValueError(
                    f"the null has no draws of {row['n_specific']} specific "
                    f"concepts (domain {row['domain']!r})"
                )
            nv = mine[col].to_numpy(dtype=np.float64)
            fin = nv[np.isfinite(nv)]
            p, n = _perm_p(float(row[col]), nv)
            ps.append(p)
            ns.append(n)
            means.append(float(fin.mean()) if fin.size else np.nan)
            q95s.append(float(np.quantile(fin, 0.95)) if fin.size else np.nan)
        out[f"p_{col}"] = ps
        out[f"null_mean_{col}"] = means
        out[f"null_q95_{col}"] = q95s
        out[f"null_n_{col}"] = ns
    return out


def mean_over_domains(observed: pd.DataFrame, null: pd.DataFrame) -> pd.DataFrame:
    """One row (``domain`` = "mean"): the mean of each share over the domains (broader share:
    over the domains where it is defined), as the paper reports it, with its permutation p-value
    against the mean over the domains of each permutation (``null`` with ``perm`` and
    ``domain`` columns, e.g. :func:`keep_broader_domains`)."""
    if "perm" not in null.columns or "domain" not in null.columns:
        raise ValueError("the null needs perm and domain columns (one draw per domain per perm)")
    row: dict[str, object] = {"domain": "mean", "n_domains": len(observed)}
    for col in ("core_share", "broader_share"):
        obs = float(np.nanmean(observed[col])) if observed[col].notna().any() else np.nan
        per_perm = null.groupby("perm")[col].mean().to_numpy(dtype=np.float64)
        fin = per_perm[np.isfinite(per_perm)]
        p, n = _perm_p(obs, per_perm)
        row.update(
            {
                col: obs,
                f"p_{col}": p,
                f"null_mean_{col}": float(fin.mean()) if fin.size else np.nan,
                f"null_q95_{col}": float(np.quantile(fin, 0.95)) if fin.size else np.nan,
                f"null_n_{col}": n,
            }
        )
    return pd.DataFrame([row])
