"""Run the real Snakemake workflow from the repository root in tests, recompute its reported
numbers, and check the errors and figures it (and the package) produce."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from base64 import urlsafe_b64decode
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from expertalign.previous_results import record_path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# Another copy of the workflow to test (e.g. one with a planted defect, to see a test catch
# it); the working directory stays the repository root.
SNAKEFILE = os.environ.get("EXPERTALIGN_TEST_SNAKEFILE")

TINY = "tests/data/tiny_config.yaml"
# The tiny run's sentence sources: generated (provided files, one concept generated) and the
# Brown corpus (falling back to the generated sentences where Brown has too few).
SOURCES = ("generated", "brown")


def snakemake(
    *args: str, timeout: float = 900, env: dict | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """``snakemake ARGS`` in the repo root; SIGINT (not SIGTERM) on timeout so it cleans up."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    snakefile = ["--snakefile", SNAKEFILE] if SNAKEFILE else []
    proc = subprocess.Popen(
        [SNAKEMAKE, *snakefile, *args],
        cwd=REPO,
        env=full_env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as err:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        raise AssertionError(f"snakemake {' '.join(args)} timed out:\n{out[-5000:]}") from err
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, "")
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{out[-8000:]}"
        )
    return result


# ------------------------------------------------------------------ the session's tiny run


@dataclass(frozen=True)
class TinyRun:
    """A finished run of the tiny config (the session fixture ``tiny_run``, or a copy of it).

    ``root`` holds ``config.yaml`` (the tiny config with ``results`` and the provided sentence
    files moved here), ``sentences/`` (copies of tests/data/sentences, which tests may edit and
    must restore) and ``results/``; ``output`` is Snakemake's output of the run that made it.
    """

    root: Path
    output: str = ""

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def configfile(self) -> Path:
        return self.root / "config.yaml"

    @property
    def config(self) -> dict:
        return yaml.safe_load(self.configfile.read_text(encoding="utf-8"))

    def snakemake(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """``snakemake --configfile <this run's config> ARGS`` in the repository root."""
        return snakemake("--configfile", str(self.configfile), *args, **kwargs)


def make_tiny_run(root: Path) -> TinyRun:
    """Run the tiny config for real under ``root`` (see :class:`TinyRun`)."""
    shutil.copytree(REPO / "tests/data/sentences", root / "sentences")
    config = yaml.safe_load((REPO / TINY).read_text(encoding="utf-8"))
    config["results"] = str(root / "results")
    config["sentences"]["provided"] = f"{root / 'sentences'}/{{concept}}.txt"
    # key order as in the tiny config: the first sentence source is the primary one
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    run = TinyRun(root)
    first = run.snakemake("--cores", "2", timeout=1500)
    return TinyRun(root, first.stdout)


def _metadata_records() -> dict[str, Path]:
    """Snakemake's metadata records in the repository's .snakemake: output path -> record file
    (the file's name is the path in URL-safe base64, split into folders past NAME_MAX, every
    part but the last prefixed with '@'; snakemake.persistence.file)."""
    folder = REPO / ".snakemake" / "metadata"
    records = {}
    for record in folder.rglob("*"):
        if record.is_file():
            parts = record.relative_to(folder).parts
            encoded = "".join(p.removeprefix("@") for p in parts[:-1]) + parts[-1]
            records[urlsafe_b64decode(encoded).decode()] = record
    return records


def copy_of_run(run: TinyRun, root: Path) -> TinyRun:
    """A copy of ``run`` under ``root`` that Snakemake sees as the same finished run: files with
    their times, and Snakemake's metadata records (params, inputs, code) of its outputs, their
    paths moved. A test that reruns jobs changes the copy, not the session's run."""
    shutil.copytree(run.root, root, symlinks=True)
    old, new = str(run.root), str(root)
    config = run.configfile.read_text(encoding="utf-8").replace(old, new)
    (root / "config.yaml").write_text(config, encoding="utf-8")
    for output, record in _metadata_records().items():
        if output.startswith(old + os.sep):
            target = record_path(REPO / ".snakemake", "metadata", new + output[len(old) :])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(record.read_text(encoding="utf-8").replace(old, new))
    return TinyRun(root, run.output)


# ------------------------------------------------------------------ reported numbers, recomputed


def _men_pairs(words: dict[str, str]) -> list[tuple[str, str, float]]:
    """(concept_a, concept_b, score) of the full MEN set (natural form) whose two words are
    concepts, read here line by line: case-insensitive, a word's first concept in table order,
    self-pairs and repeated unordered pairs (after the first) dropped."""
    concept_of: dict[str, str] = {}
    for concept, word in words.items():
        concept_of.setdefault(word.lower(), concept)
    men = REPO.parent / "shared/data/MEN/MEN_dataset_natural_form_full"
    pairs, seen = [], set()
    for line in men.read_text().splitlines():
        w1, w2, score = line.split()
        a, b = concept_of.get(w1.lower()), concept_of.get(w2.lower())
        if a is None or b is None or a == b or frozenset((a, b)) in seen:
            continue
        seen.add(frozenset((a, b)))
        pairs.append((a, b, float(score)))
    return pairs


def _recomputed_alignment(results: Path, concepts_tsv: Path) -> pd.DataFrame:
    """alignment.csv's rows (trained and random model) rebuilt from the expert shards, the
    baselines table and MEN, with Python sets for Jaccard and scipy for every statistic."""
    import numpy as np
    import pyarrow.feather as feather
    from scipy.stats import spearmanr

    config = yaml.safe_load((REPO / TINY).read_text())
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    n_boot = config["alignment"]["n_boot"]
    seed = config["alignment"].get(
        "seed", schema["properties"]["alignment"]["properties"]["seed"]["default"]
    )
    table = pd.read_csv(concepts_tsv, sep="\t", dtype=str, keep_default_na=False)
    judged = _men_pairs(dict(zip(table["concept"], table["word"])))
    scores = np.array([score for _, _, score in judged])
    rows = []
    for source, model in [(s, m) for s in SOURCES for m in ("tiny-llama", "tiny-llama-random")]:
        ap = {}
        for shard in sorted((results / "experts" / source / model / "final").glob("shard-*.arrow")):
            data = feather.read_table(shard).to_pydict()
            ap.update({c: np.asarray(v, np.float64) for c, v in zip(data["concept"], data["ap"])})
        baselines = pd.read_parquet(results / "baselines" / model / "final.parquet")
        lookup = {(r.measure, r.concept_a, r.concept_b): r.value for r in baselines.itertuples()}

        def cosine(u, v):
            return float(u @ v / np.sqrt((u @ u) * (v @ v)))

        measures = {}
        for tau in config["experts"]["taus"]:
            values = []
            for a, b, _ in judged:
                sa, sb = set(np.flatnonzero(ap[a] > tau)), set(np.flatnonzero(ap[b] > tau))
                values.append(len(sa & sb) / len(sa | sb) if sa | sb else 0.0)
            measures[("jaccard", tau)] = values
        measures[("cosine_ap", None)] = [cosine(ap[a], ap[b]) for a, b, _ in judged]
        measures[("cosine_ap_centered", None)] = [
            cosine(ap[a] - 0.5, ap[b] - 0.5) for a, b, _ in judged
        ]
        for name in ("cosine_input_embedding", "cosine_last_hidden"):
            measures[(name, None)] = [
                lookup.get((name, a, b), lookup.get((name, b, a))) for a, b, _ in judged
            ]
        idx = np.random.default_rng(seed).integers(0, len(judged), size=(n_boot, len(judged)))
        for (measure, tau), values in measures.items():
            x = np.asarray(values, dtype=np.float64)
            if np.ptp(x) == 0:  # no experts at a high tau: no correlation, reported as nan
                rows.append(
                    {
                        "source": source,
                        "model": model,
                        "measure": measure,
                        "tau": tau,
                        "rho": np.nan,
                        "n_pairs": len(judged),
                    }
                )
                continue
            ref = spearmanr(x, scores)
            boots = np.array([spearmanr(x[k], scores[k]).statistic for k in idx])
            low, high = np.quantile(boots[np.isfinite(boots)], [0.025, 0.975])
            rows.append(
                {
                    "source": source,
                    "model": model,
                    "measure": measure,
                    "tau": tau,
                    "rho": ref.statistic,
                    "ci_low": low,
                    "ci_high": high,
                    "p_value": ref.pvalue,
                    "n_pairs": len(judged),
                }
            )
    return pd.DataFrame(rows)


def _assert_alignment_table_is(results: Path, expected: pd.DataFrame) -> None:
    import numpy as np

    reported = pd.read_csv(results / "tables/alignment.csv")
    assert len(reported) == len(expected)
    for row in expected.to_dict("records"):
        tau = row["tau"]
        match = reported[
            (reported["source"] == row["source"])
            & (reported["model"] == row["model"])
            & (reported["measure"] == row["measure"])
            & (reported["tau"].isna() if pd.isna(tau) else reported["tau"] == tau)
        ]
        assert len(match) == 1, row
        got = match.iloc[0]
        assert got["n_pairs"] == row["n_pairs"], row
        if np.isnan(row["rho"]):
            assert np.isnan(got["rho"]), row
            continue
        for column in ("rho", "ci_low", "ci_high"):
            assert got[column] == pytest.approx(row[column], abs=1e-6), (column, row)
        assert got["p_value"] == pytest.approx(row["p_value"], rel=1e-4, abs=1e-12), row


# ------------------------------------------------------------------------ errors, figures
def _expect(call: Callable[[], object], error: type[BaseException], *words: str) -> str:
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message.strip(), message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


def _assert_png(path: Path, min_size: int = 5000) -> None:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > min_size
    leftovers = [p for p in Path(path).parent.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers
