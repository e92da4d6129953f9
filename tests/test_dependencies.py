"""The declared dependencies tell the truth: what the package imports is declared, test-only
libraries are not runtime dependencies, the conda env agrees with pyproject.toml, and the config
schema travels inside the wheel."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import tomllib
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "expertalign"
# Imported lazily by the SLURM submitter only; declared in the `slurm` extra.
# Imported only by the commands that need them (`expertalign preflight` reads the profile with
# Snakemake and builds sbatch options with the SLURM plugin), so they live in extras.
EXTRA_IMPORTS = {
    "submitit": "slurm",
    "snakemake": "workflow",
    "snakemake_executor_plugin_slurm": "slurm",
}


def _name(requirement: str) -> str:
    name = re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _lower_bound(requirement: str) -> str | None:
    match = re.search(r">=\s*([0-9][^,; ]*)", requirement)
    return match.group(1) if match else None


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _third_party_imports() -> set[str]:
    stdlib = set(sys.stdlib_module_names)
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top != "expertalign":
                    found.add(top)
    return found


def test_every_imported_library_is_declared_and_test_libraries_are_not_runtime():
    project = _pyproject()["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    extras = {k: {_name(r) for r in v} for k, v in project["optional-dependencies"].items()}
    distributions = packages_distributions()
    for module in sorted(_third_party_imports()):
        dists = {_name(d) for d in distributions.get(module, [module])}
        if module in EXTRA_IMPORTS:
            assert dists & extras[EXTRA_IMPORTS[module]], f"{module} not in extra"
            continue
        assert dists & runtime, (
            f"src/expertalign imports {module} ({dists}); pyproject.toml lacks it"
        )
    # The exact kernels are checked against these; the package itself never imports them.
    assert not {"scikit-learn", "polars"} & runtime
    assert {"scikit-learn", "polars"} <= extras["dev"]


def test_conda_env_declares_the_same_runtime_dependencies_and_bounds():
    project = _pyproject()["project"]
    env = yaml.safe_load((REPO / "envs" / "expertalign.yaml").read_text())
    entries = [d for d in env["dependencies"] if isinstance(d, str)]
    entries += [d for d in env["dependencies"] if isinstance(d, dict) for d in d["pip"]]
    in_env = {_name(e): _lower_bound(e) for e in entries if not e.startswith("-")}
    in_env["torch"] = in_env.pop("pytorch", None)
    for requirement in project["dependencies"]:
        name = _name(requirement)
        assert name in in_env, f"envs/expertalign.yaml lacks {name}"
        assert in_env[name] == _lower_bound(requirement), (
            f"{name}: envs/expertalign.yaml says >={in_env[name]}, pyproject.toml {requirement}"
        )


@pytest.mark.slow
def test_wheel_ships_the_config_schema(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("expertalign-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "expertalign/schemas/config.schema.yaml" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
