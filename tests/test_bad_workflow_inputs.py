"""Bad workflow inputs run through Snakemake are named and leave computed results as they were."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from tiny_models import tiny_model
from workflow_helpers import REPO, snakemake

TINY = REPO / "tests/data/tiny_config.yaml"


# Issue 12: bad input never gives a silent wrong result. Every case is a row of a table: the bad
# input, and the words its error message must contain, which name the place to fix (config key,
# file, line, column, judgment set, unit, sentence). Workflow inputs (config, concept table,
# provided sentences, judgments) are run through Snakemake against a results folder that already
# holds computed files, and the failing run must leave every one of them as it was. Cases that
# already failed clearly before issue 12 are in the table too, so that they keep doing so.


# Concepts whose sentences the prepared results folder holds before any bad run.
COMPUTED = ("sun", "rain")
# The tiny table's rows; a row appended by a case is on line N_ROWS + 2 (after the header).
N_ROWS = sum(
    1
    for line in (REPO / "tests/data/tiny_concepts.tsv").read_text(encoding="utf-8").splitlines()[1:]
    if line.strip()
)


# --- workflow inputs ----------------------------------------------------------------------


@dataclass
class Inputs:
    """A private copy of the tiny run's inputs that a case may break."""

    root: Path
    config: dict
    table: Path
    sentences: Path
    targets: list[str] = field(default_factory=list)
    extra_yaml: str = ""  # written after the config as is (a key given twice)

    def write_config(self) -> Path:
        path = self.root / "config.yaml"
        path.write_text(yaml.safe_dump(self.config) + self.extra_yaml, encoding="utf-8")
        return path

    def append_rows(self, *rows: str) -> None:
        text = self.table.read_text(encoding="utf-8")
        text += "" if text.endswith("\n") else "\n"
        self.table.write_text(text + "".join(row + "\n" for row in rows), encoding="utf-8")


def _inputs(root: Path) -> Inputs:
    sentences = root / "sentences"
    shutil.copytree(REPO / "tests/data/sentences", sentences)
    table = root / "concepts.tsv"
    shutil.copy(REPO / "tests/data/tiny_concepts.tsv", table)
    config = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    config["concepts"] = str(table)
    config["results"] = str(root / "results")
    config["sentences"]["provided"] = f"{sentences}/{{concept}}.txt"
    targets = [f"{root}/results/sentences/generated/{c}.parquet" for c in COMPUTED]
    return Inputs(root, config, table, sentences, targets)


def _set(*path_and_value):
    """A case edit that sets config[path...] = value."""
    *path, value = path_and_value

    def edit(inputs: Inputs) -> None:
        node = inputs.config
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value

    return edit


def _provided(pattern: str):
    def edit(inputs: Inputs) -> None:
        pattern_ = pattern.format(root=inputs.root, concept="{concept}")
        inputs.config["sentences"]["provided"] = pattern_

    return edit


def _two_senses(inputs: Inputs) -> None:
    inputs.append_rows(
        "bank_n\tbank\tnoun\tsloping land beside a river\t\t",
        "bank_v\tbank\tverb\tdo business with a bank\t\t",
    )


def _second_line_not_utf8(inputs: Inputs) -> None:
    lines = inputs.table.read_bytes().split(b"\n")
    lines[1] = lines[1] + b" caf\xe9"  # Latin-1, as an old editor saves it
    inputs.table.write_bytes(b"\n".join(lines))


def _unjudged_set(inputs: Inputs) -> None:
    pairs = inputs.root / "fruit_pairs.tsv"
    pairs.write_text("word1\tword2\tscore\napple\tpear\t7\nplum\tfig\t5\n", encoding="utf-8")
    inputs.config["alignment"]["judgments"] = {"fruit": {"path": str(pairs)}}


def _folder_without_tokenizer(inputs: Inputs) -> None:
    folder = inputs.root / "my-model"
    tiny_model("gpt2").save_pretrained(folder)
    inputs.config["models"] = [{"name": "mine", "source": str(folder)}]


def _bad_pos(inputs: Inputs) -> None:
    lines = inputs.table.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace("\tnoun\t", "\tthing\t")
    inputs.table.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _non_utf8_provided_file(inputs: Inputs) -> None:
    # a new concept whose file is broken: its job fails, naming the file and the line
    inputs.append_rows("hail\thail\tnoun\tsmall balls of ice\tweather\tfalse")
    text = b"Hail fell on the roof.\nThe hail was big.\n" + b"Hail \xff hurt.\n"
    (inputs.sentences / "hail.txt").write_bytes(text * 3)
    inputs.targets = [f"{inputs.config['results']}/sentences/generated/hail.parquet"]


def _second_experts_block(inputs: Inputs) -> None:
    # a second `experts:` block would replace the whole first one (shard_size, taus, ...)
    inputs.extra_yaml = "experts:\n  taus: [0.5]\n"


def _row_without(middle: bool):
    def edit(inputs: Inputs) -> None:
        if middle:  # no definition: the domain would become the definition
            inputs.append_rows("hail\thail\tnoun\tweather\tfalse")
        else:  # no broader
            inputs.append_rows("hail\thail\tnoun\tsmall balls of ice\tweather")

    return edit


def _own_corpus(make):
    """Brown replaced by a corpus of one's own, ``make(root) -> path``."""

    def edit(inputs: Inputs) -> None:
        path = make(inputs.root)
        inputs.config["sentences"]["sources"]["brown"].update(corpus=str(path))

    return edit


def _parquet_without_text(root: Path) -> Path:
    import pandas as pd

    path = root / "wiki.parquet"
    pd.DataFrame({"sentence": ["The sun is hot.", "Rain fell."]}).to_parquet(path)
    return path


def _few_provided_sentences(inputs: Inputs) -> None:
    inputs.append_rows("hail\thail\tnoun\tsmall balls of ice\tweather\tfalse")
    lines = [f"Hail fell on roof {i}." for i in range(5)]
    (inputs.sentences / "hail.txt").write_text("\n".join(lines * 2) + "\n", encoding="utf-8")


def _three_judged_pairs(inputs: Inputs) -> None:
    pairs = inputs.root / "weather_pairs.tsv"
    pairs.write_text(
        "word1\tword2\tscore\nsun\train\t3\nsun\tsunny\t9\ncold\tfrost\t8\nplum\tfig\t5\n",
        encoding="utf-8",
    )
    inputs.config["alignment"]["judgments"] = {"weather": {"path": str(pairs)}}


def _renamed_provided_file(inputs: Inputs) -> None:
    (inputs.sentences / "sun.txt").rename(inputs.sentences / "Sun.txt")


@dataclass
class WorkflowCase:
    name: str
    edit: Callable[[Inputs], None]
    expected: tuple[str, ...]  # {root} is the case's folder
    in_job: bool = False  # False: refused before any job runs


WORKFLOW_CASES = [
    # -- issue 12: silent wrong results
    WorkflowCase(
        "two concepts with one word",
        _two_senses,
        (
            "concepts.tsv, line {next+1}, column 'word'",
            "'bank_n' (line {next})",
            "one sense per word",
        ),
    ),
    WorkflowCase(
        "repeated tau", _set("experts", "taus", [0.5, 0.5]), ("experts.taus", "non-unique")
    ),
    WorkflowCase(
        "provided pattern without {concept}",
        _provided("{root}/sentences/sun.txt"),
        ("sentences.provided", "no {concept} placeholder"),
    ),
    WorkflowCase(
        "misspelt provided folder",
        _provided("{root}/sentense/{concept}.txt"),
        ("sentences.provided", "{root}/sentense/", "does not exist"),
    ),
    WorkflowCase(
        "provided pattern matching no file",
        _provided("{root}/sentences/{concept}.text"),
        ("sentences.provided", "no concept has a file"),
    ),
    WorkflowCase("spp.tau above 1", _set("spp", "tau", 7), ("spp.tau", "expected number > 0")),
    WorkflowCase(
        "plain-http key to a remote host",
        lambda i: i.config["sentences"].update(
            backend="openai", openai_base_url="http://example.org/v1"
        ),
        ("sentences.openai_base_url", "https"),
    ),
    # -- issue 12: crashes
    WorkflowCase("no tau", _set("experts", "taus", []), ("experts.taus", "non-empty")),
    WorkflowCase(
        "provided pattern with another placeholder",
        _provided("{root}/sentences/{{name}}.txt"),
        ("sentences.provided", "{name}"),
    ),
    WorkflowCase(
        "temperature 0",
        _set("sentences", "temperature", 0),
        ("sentences.temperature", "expected number > 0"),
    ),
    WorkflowCase("top_p 5", _set("sentences", "top_p", 5), ("sentences.top_p", "<= 1")),
    WorkflowCase(
        "max_length -1", _set("experts", "max_length", -1), ("experts.max_length", ">= 1")
    ),
    WorkflowCase(
        "no judged pair among the concepts",
        _unjudged_set,
        ("judgment set 'fruit'", "{root}/fruit_pairs.tsv", "0 of its 2 pairs"),
    ),
    # -- issue 12: unclear messages
    WorkflowCase(
        "non-UTF-8 byte on line 2 of the concept table",
        _second_line_not_utf8,
        ("concepts.tsv, line 2", "not UTF-8"),
    ),
    WorkflowCase(
        "local model folder without a tokenizer",
        _folder_without_tokenizer,
        ("models[0] (mine)", "{root}/my-model has no tokenizer"),
    ),
    WorkflowCase(
        "embedded model at a checkpoint",
        lambda i: i.config["models"][0].update(source="embedded", revisions=["step1"]),
        ("models[0] (tiny-llama)", "no revision(s) ['step1']"),
    ),
    WorkflowCase(
        "unknown key", _set("colour", "blue"), ("unknown key 'colour'", "Additional properties")
    ),
    WorkflowCase(
        "misspelt nested key",
        _set("experts", "tau", [0.5]),
        ("unknown key 'tau' (did you mean 'taus'?) under experts",),
    ),
    WorkflowCase(
        "non-UTF-8 provided file",
        _non_utf8_provided_file,
        ("sentences.provided", "{root}/sentences/hail.txt, line 3", "not UTF-8"),
    ),
    # -- already clear before issue 12; kept so
    WorkflowCase("bad pos", _bad_pos, ("concepts.tsv, line 4, column 'pos'", "thing")),
    WorkflowCase(
        "duplicate concept id",
        lambda i: i.append_rows("sun\tsol\tnoun\t\t\t"),
        ("concepts.tsv, line {next}, column 'concept'", "duplicate concept id 'sun'"),
    ),
    WorkflowCase(
        "positives to negatives far from 400:1000",
        _set("sentences", "n_positives", 2),
        ("sentences.n_positives", "400:1000"),
    ),
    WorkflowCase(
        "bank drawn from more concepts than the table has",
        _set("negatives", "bank_source_concepts", 99),
        ("negatives.bank_source_concepts=99", f"only {N_ROWS} concepts"),
    ),
    WorkflowCase(
        "float16 model",
        lambda i: i.config["models"][0].update(dtype="float16"),
        ("models[0].dtype", "one of auto, float32, bfloat16"),
    ),
    # -- issue 23: silent inputs caught when the workflow loads
    WorkflowCase(
        "experts block given twice",
        _second_experts_block,
        ("{root}/config.yaml, line ", "column 1: config key experts is given twice"),
    ),
    WorkflowCase(
        "concept row missing a middle field",
        _row_without(middle=True),
        ("concepts.tsv, line {next}, column 'broader'", "5 tab-separated fields", "shift left"),
    ),
    WorkflowCase(
        "concept row without broader",
        _row_without(middle=False),
        ("concepts.tsv, line {next}, column 'broader'", "5 tab-separated fields"),
    ),
    WorkflowCase(
        "bank larger than its concepts' sentences",
        _set("negatives", "bank_size", 60),
        ("negatives.bank_size", "bank_source_concepts=7", "56 at most"),
    ),
    WorkflowCase(
        "bank too small once a concept's own sentences are removed",
        _set("negatives", "bank_size", 22),
        ("negatives.bank_size", "n_negatives=20", "at least 24"),
    ),
    WorkflowCase(
        "corpus path that does not exist",
        _own_corpus(lambda root: root / "wiki.txt"),
        ("sentences.sources.brown.corpus", "{root}/wiki.txt does not exist"),
    ),
    WorkflowCase(
        "Parquet corpus without a text column",
        _own_corpus(_parquet_without_text),
        ("sentences.sources.brown.corpus", "{root}/wiki.parquet has no 'text' column"),
    ),
    WorkflowCase(
        "provided file with fewer distinct sentences than n_positives",
        _few_provided_sentences,
        ("sentences.provided", "{root}/sentences/hail.txt has 5 distinct", "n_positives is 8"),
    ),
    WorkflowCase(
        "judgment set with 3 usable pairs",
        _three_judged_pairs,
        ("judgment set 'weather'", "3 of its 4 pairs", "need at least 4"),
    ),
    WorkflowCase(
        "n_boot without an upper bound",
        _set("alignment", "n_boot", 100_000_000),
        ("alignment.n_boot", "<= 100000"),
    ),
    WorkflowCase(
        "missing judgment file",
        lambda i: i.config["alignment"].update(judgments={"fruit": {"path": f"{i.root}/no.tsv"}}),
        ("config key alignment.judgments.fruit.path", "{root}/no.tsv: file not found"),
    ),
    WorkflowCase(
        "fallback on a generated source",
        lambda i: i.config["sentences"]["sources"]["generated"].update(fallback="brown"),
        ("sentences.sources.generated.fallback", "only a corpus source falls back"),
    ),
    WorkflowCase(
        "provided file renamed in case",
        _renamed_provided_file,
        ("sentences.provided", "'sun' has no file {root}/sentences/sun.txt", "Sun.txt is there"),
    ),
]


def _digest(results: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``results``: its SHA-256 and modification time."""
    return {
        str(path.relative_to(results)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns,
        )
        for path in sorted(results.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def computed(tmp_path_factory) -> tuple[Path, dict[str, tuple[str, int]]]:
    """A results folder holding the sentences of COMPUTED, made by a real run."""
    inputs = _inputs(tmp_path_factory.mktemp("computed"))
    run = snakemake(
        "--configfile", str(inputs.write_config()), "--cores", "1", *inputs.targets, timeout=600
    )
    results = Path(inputs.config["results"])
    digest = _digest(results)
    assert {f"sentences/generated/{c}.parquet" for c in COMPUTED} <= set(digest), digest
    # the run keeps the config it used, merged over config/config.yaml, and says where
    effective = results / "config/effective.yaml"
    assert f"effective config: {effective}" in run.stdout, run.stdout[-3000:]
    used = yaml.safe_load(effective.read_text(encoding="utf-8"))
    assert used["concepts"] == inputs.config["concepts"]
    assert used["sentences"]["prompts"] == "short"  # from config/config.yaml only
    assert "config.yaml is laid over config/config.yaml" in run.stdout
    return results, digest


@pytest.mark.parametrize("case", WORKFLOW_CASES, ids=lambda c: c.name)
def test_bad_workflow_input_is_named_and_keeps_results(case, computed, tmp_path):
    results, before = computed
    inputs = _inputs(tmp_path)
    # the bad run reuses the computed results: nothing there may be deleted or changed
    inputs.config["results"] = str(results)
    # this case's provided files are copies at another path, which would rerun the computed
    # concepts: they are targets only where the bad input is refused before any job
    inputs.targets = [f"{results}/sentences/generated/{c}.parquet" for c in COMPUTED]
    case.edit(inputs)
    run = snakemake(
        "--configfile",
        str(inputs.write_config()),
        "--cores",
        "1",
        *inputs.targets,
        check=False,
        timeout=600,
    )
    assert run.returncode != 0, run.stdout[-3000:]
    places = {"{root}": str(tmp_path), "{next}": str(N_ROWS + 2), "{next+1}": str(N_ROWS + 3)}
    expected = list(case.expected)
    for placeholder, value in places.items():
        expected = [e.replace(placeholder, value) for e in expected]
    if case.in_job:
        # the job's log holds the message; Snakemake's output names the log
        # (hail's batch is a generate_sentences job, or collect_sentences when it holds no
        # concept to generate)
        logs = [
            log
            for log in (results / "logs").glob("*_sentences/generated/*.log")
            if str(log) in run.stdout
        ]
        assert len(logs) == 1, run.stdout[-3000:]
        log = logs[0]
        message = log.read_text(encoding="utf-8")
        assert not (results / "sentences/generated/hail.parquet").exists()
    else:
        assert "Failed validating" not in run.stdout  # no schema dump
        # the line that matters comes first, right after Snakemake's "Error in file" line
        lines = run.stdout.splitlines()
        at = next(i for i, line in enumerate(lines) if re.search(r"Error in file ", line))
        message = lines[at + 1]
        assert "rule generate_sentences" not in run.stdout, "a job ran"
    for words in expected:
        assert words in message, f"{words!r} not in {message!r}"
    after = _digest(results)
    # a job that ran and failed writes its own log and benchmark: a sentence batch keeps its
    # name (its block of the table), so that is the computed run's log of the same batch, which
    # Snakemake overwrites; every result stays
    own = set()
    if case.in_job:
        name = str(log.relative_to(results))
        own = {name, name.replace("logs/", "benchmarks/", 1).replace(".log", ".tsv")}
    kept = {k: v for k, v in before.items() if k not in own}
    unchanged = {k: v for k, v in kept.items() if after.get(k) == v}
    assert unchanged == kept, sorted(set(kept) - set(unchanged))
    before.update({k: after[k] for k in own if k in after})  # the next case's baseline
