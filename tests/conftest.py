"""Fixtures shared by the test modules; pytest finds them here, so a test just names them.

    def test_through_slurm(local_slurm, tmp_path):      # the one-node SLURM cluster (session)
        ...

    def test_offline(monkeypatch_module): ...           # a module-scoped MonkeyPatch

    def test_tables(tiny_run): ...                      # the tiny workflow, run once (session)

Helpers that are not fixtures stay in their modules (``slurm_cluster``, ``tiny_models``,
``workflow_helpers``, ``prerequisites``), imported by the tests that use them.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_slurm():
    """A real one-node SLURM cluster (:mod:`slurm_cluster`), started once per session and
    stopped at its end if this session started it; skipped, saying why, where it cannot start
    (a failure in CI)."""
    import slurm_cluster

    slurm_cluster.skip_unless_startable()
    cluster = slurm_cluster.start_cluster()
    try:
        yield cluster
    finally:
        slurm_cluster.stop_cluster(cluster)


@pytest.fixture(scope="module")
def monkeypatch_module():
    """``monkeypatch`` for module-scoped fixtures: undone when the module's tests are done."""
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny config run for real once per session (:class:`workflow_helpers.TinyRun`).

    Tests read it, dry-run against it, or edit its provided sentence files and restore them;
    a test that reruns jobs works on ``workflow_helpers.copy_of_run(tiny_run, tmp_path)``.
    """
    from workflow_helpers import make_tiny_run

    return make_tiny_run(tmp_path_factory.mktemp("tiny-run"))


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """huggingface_hub offline, reading a Hub cache in ``tmp_path`` (returned): its real
    snapshot_download answers from it."""
    from huggingface_hub import constants as hub_constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return cache
