"""Fixtures shared by the test modules; pytest finds them here, so a test just names them.

    def test_through_slurm(local_slurm, tmp_path):      # the one-node SLURM cluster (session)
        ...

    def test_offline(monkeypatch_module): ...           # a module-scoped MonkeyPatch

    def test_tables(tiny_run): ...                      # the tiny workflow, run once (session)

The suite runs on two pytest-xdist workers (pyproject.toml's addopts; ``-n 0`` runs it in one
process): ``pytest_collection_modifyitems`` says which tests share a worker, and why.

Helpers that are not fixtures stay in their modules (``slurm_cluster``, ``tiny_models``,
``workflow_helpers``, ``prerequisites``), imported by the tests that use them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# A SLURM client config whose controller is nowhere (nothing listens on port 1).
_NO_CONTROLLER = "ClusterName=none\nSlurmctldHost=localhost\nSlurmctldPort=1\nMessageTimeout=1\n"


@pytest.fixture(scope="session", autouse=True)
def slurm_client_answers_at_once(tmp_path_factory):
    """Every Snakemake start imports the SLURM executor plugin, which asks ``scontrol show
    config`` for MinJobAge with a 10 s timeout. Where SLURM's client is installed but no
    controller runs (this machine between SLURM tests), each Snakemake start would wait ~9 s for
    that answer. Until a test starts the local cluster (``local_slurm``), SLURM's client reads a
    config whose controller is on a closed port, and fails at once; the plugin's answer is the
    same ("no MinJobAge"), and no test that does not start the cluster uses SLURM."""
    if "SLURM_CONF" in os.environ or shutil.which("scontrol") is None:
        yield
        return
    conf = tmp_path_factory.mktemp("no-slurm-controller") / "slurm.conf"
    conf.write_text(_NO_CONTROLLER)
    os.environ["SLURM_CONF"] = str(conf)
    try:
        yield
    finally:
        if os.environ.get("SLURM_CONF") == str(conf):
            del os.environ["SLURM_CONF"]


@pytest.fixture(scope="session", autouse=True)
def tiny_workflow_model():
    """The tiny config's model folder (``tiny_models.TINY_LLAMA``), saved once before any test
    that may read the tiny config; under pytest-xdist by the first worker to get here, under a
    file lock the other one waits on."""
    from filelock import FileLock
    from tiny_models import TINY_LLAMA, build_tiny_llama

    folder = Path(__file__).resolve().parents[1] / TINY_LLAMA
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / "tiny-llama.lock")):
        return build_tiny_llama(folder)


@pytest.fixture(scope="session")
def local_slurm(tmp_path_factory):
    """A real one-node SLURM cluster (:mod:`slurm_cluster`), started once per session and
    stopped at its end if this session started it; skipped, saying why, where it cannot start
    (a failure in CI)."""
    import slurm_cluster

    if "no-slurm-controller" in os.environ.get("SLURM_CONF", ""):
        del os.environ["SLURM_CONF"]  # the cluster's own config from here on
    slurm_cluster.skip_unless_startable()
    cluster = slurm_cluster.start_cluster()
    try:
        # checked by the last SLURM test (test_slurm_limits); its minute passes meanwhile
        folder = tmp_path_factory.mktemp("over-time-job")
        cluster.over_time_job = slurm_cluster.OverTimeJob(folder)
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
    Under pytest-xdist the workers share one run: the first to ask makes it in the workers'
    common temporary folder, under a file lock the others wait on.
    """
    from filelock import FileLock
    from workflow_helpers import TinyRun, make_tiny_run

    if "PYTEST_XDIST_WORKER" not in os.environ:
        return make_tiny_run(tmp_path_factory.mktemp("tiny-run"))
    shared = tmp_path_factory.getbasetemp().parent  # pytest-of-<user>/pytest-<n>/, not popw<i>
    root, output = shared / "tiny-run", shared / "tiny-run.output"
    with FileLock(str(shared / "tiny-run.lock")):
        if not output.exists():
            shutil.rmtree(root, ignore_errors=True)  # a worker's failed attempt
            root.mkdir()
            output.write_text(make_tiny_run(root).output, encoding="utf-8")
    return TinyRun(root, output.read_text(encoding="utf-8"))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups from the marks
def pytest_collection_modifyitems(config, items):
    """Work units for pytest-xdist's ``--dist loadgroup`` (pyproject.toml's addopts), in the
    order they are handed out (``--no-loadscope-reorder``): the SLURM tests first, on one worker
    (they share one cluster), the tiny SLURM run last among them (it waits for the session's
    tiny run); then the tests of the session's tiny run, on one worker (some edit and restore
    its files), so it is made while the SLURM tests run; then every other module as one unit,
    so that its module fixtures are built once. Without xdist only the order changes."""

    def needs(item, fixture: str) -> bool:
        return fixture in getattr(item, "fixturenames", ())

    def unit(item) -> tuple[int, str]:
        if item.get_closest_marker("slurm"):
            return 0, "slurm"
        if needs(item, "tiny_run"):
            return 1, "tiny-run"
        return 2, item.nodeid.split("::")[0]

    for item in items:
        item.add_marker(pytest.mark.xdist_group(unit(item)[1]))
    # a stable sort: collection order within each unit, except that the SLURM tests of the tiny
    # run come last but one, and the check of the job that overran its time limit (submitted
    # when the cluster started) last
    items.sort(
        key=lambda item: (
            unit(item)[0],
            needs(item, "tiny_run"),
            item.name == "test_job_over_its_time_limit_is_ended",
        )
    )


_XDIST_GROUPS_BROKEN = "pytest-xdist's --dist loadgroup does not group on pytest >= 9.2"


def pytest_configure(config):
    """Refuse at once to run with xdist's groups out of effect (see
    ``pytest_collection_modifyitems``): tests of the shared tiny run would run on both workers
    and see each other's edits, and two workers would start the SLURM cluster."""
    workers = config.getvalue("numprocesses")
    if config.getvalue("dist") != "loadgroup" or not workers or "PYTEST_XDIST_WORKER" in os.environ:
        return
    import xdist
    from packaging.version import Version

    if Version(pytest.__version__) >= Version("9.2") and Version(xdist.__version__) <= Version(
        "3.8.0"
    ):
        raise pytest.UsageError(
            f"{_XDIST_GROUPS_BROKEN} (pytest {pytest.__version__}, pytest-xdist "
            f"{xdist.__version__}; pytest-dev/pytest-xdist#1386): install the versions of "
            "tools/constraints.txt (bash tools/setup.sh), or run in one process (-n 0)"
        )


def pytest_collection_finish(session):
    """The same, seen from a worker: every node id must carry its group after an ``@``."""
    if "PYTEST_XDIST_WORKER" not in os.environ or not session.config.getvalue("loadgroup"):
        return
    ungrouped = [item.nodeid for item in session.items if "@" not in item.nodeid]
    if ungrouped:
        raise pytest.UsageError(f"{_XDIST_GROUPS_BROKEN}: {len(ungrouped)} tests not grouped")


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
