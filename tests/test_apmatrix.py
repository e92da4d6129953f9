"""APMatrix reads a run's AP files as one matrix without loading it: same values as loading,
and memory bounded by a column block (or the packed masks), not by the files' size."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from expertalign.analysis import development as dev
from expertalign.analysis import domain_null
from expertalign.apmatrix import APMatrix
from expertalign.similarity import pairwise_similarity
from expertalign.storage import expertise_table, read_expertise, write_table_atomic


def _shards(tmp_path, sizes, n_units, seed=0):
    rng = np.random.default_rng(seed)
    paths = []
    for k, n in enumerate(sizes):
        ap = rng.random((n, n_units)).astype(np.float32)
        path = tmp_path / f"shard-{k:04d}.arrow"
        names = [f"c{k}_{i}" for i in range(n)]
        write_table_atomic(expertise_table(names, ap, n_pos=[4] * n, n_neg=[9] * n), path)
        paths.append(path)
    return paths


def test_reads_the_same_values_as_loading(tmp_path):
    paths = _shards(tmp_path, [3, 4, 2], 1001)
    concepts, full = read_expertise(paths)
    ap = APMatrix(paths)
    assert ap.concepts == concepts and ap.shape == full.shape
    assert np.array_equal(np.asarray(ap), full)
    assert np.array_equal(ap[:, 5:300], full[:, 5:300])
    assert np.array_equal(ap[[0, 4, 8]], full[[0, 4, 8]])
    assert np.array_equal(ap[5], full[5])
    assert np.array_equal(ap[2:6, 3:9], full[2:6, 3:9])
    for tau in (0.5, 0.9):
        packed = ap.packed_masks(tau, units=64)  # blocks end inside a byte only at the end
        assert np.array_equal(packed.rows(range(9)), full > tau)
        assert np.array_equal(packed.sizes(), (full > tau).sum(axis=1))
        rows = ap.packed_rows([8, 1], tau)
        assert np.array_equal(rows.rows([0, 1]), full[[8, 1]] > tau)


def test_reductions_agree_with_the_loaded_matrix(tmp_path):
    paths = _shards(tmp_path, [5, 5], 700, seed=1)
    _, full = read_expertise(paths)
    ap = APMatrix(paths)
    lazy, loaded = (
        pairwise_similarity(ap, [0.5, 0.8], chunk_units=128),
        pairwise_similarity(full, [0.5, 0.8]),
    )
    for tau in (0.5, 0.8):
        assert np.array_equal(lazy.intersections[tau], loaded.intersections[tau])
    np.testing.assert_allclose(lazy.cosine_ap, loaded.cosine_ap, rtol=1e-6)
    sizes = dev.concept_set_sizes(ap, [0.5, 0.8], ap.concepts)
    assert sizes["size"].tolist() == dev.concept_set_sizes(full, [0.5, 0.8])["size"].tolist()
    for rows in (None, [1, 3, 7]):
        lazy_counts = dev.unit_expert_counts(ap, [0.6], rows=rows)[0.6]
        picked = full if rows is None else full[rows]
        assert np.array_equal(lazy_counts, (picked > 0.6).sum(axis=0))
    (tmp_path / "next").mkdir()
    shifted = APMatrix(_shards(tmp_path / "next", [5, 5], 700, seed=2))
    lazy_stab = dev.consecutive_jaccard(ap, shifted, [0.5])
    loaded_stab = dev.consecutive_jaccard(full, np.asarray(shifted), [0.5])
    np.testing.assert_allclose(lazy_stab["jaccard"], loaded_stab["jaccard"])
    assert lazy_stab["size_to"].tolist() == loaded_stab["size_to"].tolist()
    masks = full > 0.5
    draws_lazy = domain_null.random_domains(ap.packed_masks(0.5), n_perm=30, seed=3)
    draws_loaded = domain_null.random_domains(masks, n_perm=30, seed=3)
    assert draws_lazy["n_core"].tolist() == draws_loaded["n_core"].tolist()


@pytest.mark.parametrize("reduction", ["similarity", "packed_masks"])
def test_memory_is_a_block_not_the_files(tmp_path, reduction):
    """64 concepts x 200,000 units = 51 MB of AP; the reduction allocates a fraction of it."""
    paths = _shards(tmp_path, [16] * 4, 200_000)
    ap = APMatrix(paths)
    data_bytes = 64 * 200_000 * 4
    tracemalloc.start()
    try:
        if reduction == "similarity":
            pairwise_similarity(ap, [0.5, 0.7], chunk_units=8192)
        else:
            ap.packed_masks(0.5, units=8192)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < data_bytes / 4, (peak, data_bytes)
