"""Prerequisites of tests: skipped with a reason on a developer's machine, a failure in CI.

``.ci/run`` installs every prerequisite (WordNet, Chromium, the local SLURM cluster's packages;
the MEN and SPP data are in the shared data folder), so in CI (``CI=true``, as CI services set it)
a missing one means the test of something we promise did not run: that must fail, not skip.

    from prerequisites import require, DATA
    require((DATA / "SPP").is_dir(), f"SPP data under {DATA}")
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the shared human-judgment data (the tiny and default configs read ../shared/data)
DATA = Path(os.environ.get("EXPERTALIGN_DATA", REPO.parent / "shared" / "data"))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(available: bool, what: str) -> None:
    """Skip (locally) or fail (in CI) the calling test when ``what`` is not available."""
    if available:
        return
    if in_ci():
        pytest.fail(f"{what} is missing in CI (.ci/run installs it): the test cannot be skipped")
    pytest.skip(f"{what} is missing")
