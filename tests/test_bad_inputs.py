"""Bad input never gives a silent wrong result (issue 12).

Every case is a row of a table: the bad input, and the words its error message must contain,
which name the place to fix (config key, file, line, column, judgment set, unit, sentence).
Workflow inputs (config, concept table, provided sentences, judgments) are run through
Snakemake against a results folder that already holds computed files, and the failing run must
leave every one of them as it was. Package inputs (Python API) are called directly. Cases that
already failed clearly before issue 12 are in the tables too, so that they keep doing so.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import pickle
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import average_precision_score
from tiny_models import tiny_model, word_tokenizer
from workflow_helpers import REPO, snakemake

TINY = REPO / "tests/data/tiny_config.yaml"
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

    def write_config(self) -> Path:
        path = self.root / "config.yaml"
        path.write_text(yaml.safe_dump(self.config), encoding="utf-8")
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
        lambda i: i.config["models"][0].update(revisions=["step1"]),
        ("models[0] (tiny-smollm2)", "no revision(s) ['step1']"),
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
        ("{root}/sentences/hail.txt, line 3", "not UTF-8"),
        in_job=True,
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
    snakemake(
        "--configfile", str(inputs.write_config()), "--cores", "1", *inputs.targets, timeout=600
    )
    results = Path(inputs.config["results"])
    digest = _digest(results)
    assert {f"sentences/generated/{c}.parquet" for c in COMPUTED} <= set(digest), digest
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
    unchanged = {k: v for k, v in before.items() if after.get(k) == v}
    assert unchanged == before, sorted(set(before) - set(unchanged))


# --- package inputs -----------------------------------------------------------------------


def _expect(call: Callable[[], object], error: type[BaseException], *words: str) -> str:
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message.strip(), message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


def test_two_senses_of_one_word_are_refused_at_table_load(tmp_path):
    from expertalign.concepts import ConceptTableError, load_concepts, word_concepts

    table = tmp_path / "c.tsv"
    table.write_text(
        "concept\tword\tpos\nbank_n\tbank\tnoun\ncat\tcat\tnoun\nbank_v\tBank\tverb\n",
        encoding="utf-8",
    )
    _expect(
        lambda: load_concepts(table),
        ConceptTableError,
        f"{table}, line 4, column 'word'",
        "'bank_n' (line 2)",
    )
    import pandas as pd

    frame = pd.DataFrame({"concept": ["bank_n", "bank_v"], "word": ["bank", "bank"]})
    _expect(lambda: word_concepts(frame), ValueError, "'bank_n' and 'bank_v'")


def test_concept_table_header_with_a_byte_order_mark_is_read(tmp_path):
    from expertalign.concepts import load_concepts

    table = tmp_path / "c.tsv"
    table.write_bytes("\ufeffconcept\tword\tpos\ncat\tcat\tnoun\n".encode())
    assert load_concepts(table)["concept"].tolist() == ["cat"]


def test_concept_table_bad_byte_is_reported_on_its_line(tmp_path):
    from expertalign.concepts import ConceptTableError, load_concepts

    table = tmp_path / "c.tsv"
    table.write_bytes(b"concept\tword\tpos\ncat\tcat\tnoun\ndog\td\xf6g\tnoun\n")
    _expect(lambda: load_concepts(table), ConceptTableError, f"{table}, line 3", "0xf6")


@pytest.mark.parametrize("suffix", [".txt", ".tsv", ".csv"])
def test_provided_file_with_a_byte_order_mark_loses_it(tmp_path, suffix):
    from expertalign.sentences import read_provided_sentences

    body = {
        ".txt": "A cat sat.\nA cat ran.\n",
        ".tsv": "text\nA cat sat.\nA cat ran.\n",
        ".csv": "text\nA cat sat.\nA cat ran.\n",
    }[suffix]
    path = tmp_path / f"cat{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert read_provided_sentences(path) == ["A cat sat.", "A cat ran."]


def test_provided_file_that_is_not_utf8_is_named(tmp_path):
    from expertalign.sentences import read_provided_sentences

    path = tmp_path / "cat.txt"
    path.write_bytes(b"A cat sat.\nA c\xe4t ran.\n")
    _expect(lambda: read_provided_sentences(path), ValueError, f"{path}, line 2", "UTF-8")


def test_provided_file_with_too_few_sentences_names_it(tmp_path):
    from expertalign.sentences import SentenceGenerationError, provided_concept_sentences

    path = tmp_path / "cat.txt"
    path.write_text("A cat sat.\n", encoding="utf-8")
    _expect(
        lambda: provided_concept_sentences({"concept": "cat"}, path, 3),
        SentenceGenerationError,
        "concept 'cat'",
        str(path),
        "3 needed",
    )


@pytest.mark.parametrize(
    "pattern, words",
    [
        ("s/cat.txt", ("sentences.provided", "no {concept}")),
        ("s/{name}/{concept}.txt", ("sentences.provided", "{name}")),
        ("s/{concept.txt", ("sentences.provided", "not a valid pattern")),
    ],
)
def test_provided_pattern_is_checked(pattern, words):
    from expertalign.config import ConfigError, check_provided_pattern

    _expect(lambda: check_provided_pattern(pattern), ConfigError, *words)


def test_judgment_file_that_is_not_utf8_is_named(tmp_path):
    from expertalign.judgments import JudgmentFileError, read_word_pairs

    path = tmp_path / "pairs.tsv"
    path.write_bytes(b"word1\tword2\tscore\ncat\tdog\t3\ncaf\xe9\ttea\t4\n")
    _expect(lambda: read_word_pairs(path), JudgmentFileError, f"{path}: line 3", "UTF-8")


def test_judgment_score_that_is_no_number_is_named(tmp_path):
    from expertalign.judgments import JudgmentFileError, read_word_pairs

    path = tmp_path / "pairs.tsv"
    path.write_text("word1\tword2\tscore\ncat\tdog\tthree\n", encoding="utf-8")
    _expect(lambda: read_word_pairs(path), JudgmentFileError, str(path), "line 2", "'score'")


def test_no_judged_pair_names_the_set_and_its_file():
    from expertalign.judgments import (
        JudgmentFileError,
        judged_among,
        judgment_source,
        read_judgment_set,
    )

    data = REPO.parent / "shared/data"
    spec = {"split": "full"}
    men = read_judgment_set("men", spec, data)
    _expect(
        lambda: judged_among(men, ["qwertz", "asdfg"], "men", judgment_source("men", spec, data)),
        JudgmentFileError,
        "judgment set 'men'",
        "MEN_dataset_natural_form_full",
        "0 of its 3000 pairs",
    )


def test_average_precision_takes_numpy():
    import expertalign

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(30, 5)).astype(np.float32)
    labels = np.arange(30) < 10
    ap = expertalign.average_precision(scores, labels)
    assert isinstance(ap, np.ndarray) and ap.dtype == np.float64
    expected = [average_precision_score(labels, scores[:, u]) for u in range(5)]
    np.testing.assert_allclose(ap, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        expertalign.average_precision(scores[::-1], labels[::-1]), expected, rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        expertalign.average_precision(scores.tolist(), labels.astype(int)),
        expected,
        rtol=0,
        atol=1e-12,
    )


def test_average_precision_says_what_it_expects():
    import expertalign
    from expertalign.ap import EmptyClassError

    _expect(
        lambda: expertalign.average_precision(np.array([["a"], ["b"]]), [True, False]),
        TypeError,
        "scores must be numbers",
    )
    _expect(
        lambda: expertalign.average_precision(np.zeros((2, 1)), [0, 2]),
        ValueError,
        "labels must be bool or 0/1",
    )
    _expect(
        lambda: expertalign.average_precision(np.zeros((2, 1)), [True, True]),
        EmptyClassError,
        "negative set is empty",
    )


def test_nan_in_a_shard_names_its_unit_and_sentence():
    """A NaN of one unit for one sentence is reported as that unit and that sentence."""
    from expertalign.ap import NonFiniteResponseError
    from expertalign.extract import ConceptSentences, shard_expertise
    from expertalign.models import LoadedModel
    from expertalign.units import find_units

    model, tokenizer = tiny_model("gpt2"), word_tokenizer()
    layout = find_units(model)
    target = next(m for m in layout.modules if m.name == "transformer.h.1.mlp.c_fc")
    poisoned = tokenizer.convert_tokens_to_ids("postman")
    seen: dict[str, torch.Tensor] = {}

    def remember(_module, args, kwargs):
        seen["ids"] = kwargs["input_ids"]

    def poison(_module, _inputs, output):
        rows = (seen["ids"] == poisoned).any(dim=1)
        output[rows, :, 3] = float("nan")

    handles = [
        model.base_model.register_forward_pre_hook(remember, with_kwargs=True),
        dict(model.named_modules())[target.name].register_forward_hook(poison),
    ]
    bank = ["a red car drove fast", "the chair is blue", "it was green", "they sat"]
    concept = ConceptSentences("dog", ["the dog sat on the mat", "the dog barked at the postman"])
    try:
        message = _expect(
            lambda: shard_expertise(
                LoadedModel(model, tokenizer, "tiny", None),
                layout,
                [concept],
                [f"b{i}" for i in range(4)],
                bank,
                4,
            ),
            NonFiniteResponseError,
            f"unit {target.offset + 3} (transformer.h.1.mlp.c_fc feature 3)",
            "for sentence 5 ('the dog barked at the postman')",
        )
        assert "first at unit" in message
    finally:
        for handle in handles:
            handle.remove()


def test_misspelt_unit_spec_suffix_is_refused():
    from expertalign.units import UnitSpec, UnknownArchitectureError, find_units

    spec = UnitSpec(layers="h", modules={"attn.c_attn": "attention", "mlp.c_fcc": "mlp"})
    _expect(
        lambda: find_units(tiny_model("gpt2"), spec),
        UnknownArchitectureError,
        "['mlp.c_fcc'] match no module",
        "'mlp.c_fc'",
    )


def test_unknown_architecture_is_named():
    from expertalign.units import UnknownArchitectureError, find_units

    model = torch.nn.Linear(2, 2)
    _expect(lambda: find_units(model), UnknownArchitectureError, "no unit spec for model_type")


def test_model_folder_without_tokenizer_is_refused_before_loading(tmp_path):
    from expertalign.models import ModelNotFoundError, load_model

    tiny_model("gpt2").save_pretrained(tmp_path / "m")
    _expect(
        lambda: load_model(str(tmp_path / "m")),
        ModelNotFoundError,
        f"{tmp_path / 'm'} has no tokenizer",
    )
    _expect(
        lambda: load_model(str(tmp_path / "nothing")),
        ModelNotFoundError,
        f"{tmp_path / 'nothing'} does not exist",
    )


def test_model_folder_with_its_tokenizer_loads(tmp_path):
    from expertalign.models import load_model

    tiny_model("gpt2").save_pretrained(tmp_path / "m")
    word_tokenizer().save_pretrained(tmp_path / "m")
    lm = load_model(str(tmp_path / "m"))
    assert lm.tokenizer("the cat sat", add_special_tokens=False)["input_ids"]


def test_float16_is_refused_with_a_reason():
    from expertalign.models import resolve_dtype

    _expect(lambda: resolve_dtype("float16", torch.device("cpu")), ValueError, "overflow")


def test_prefetch_fetches_only_what_loading_needs():
    from huggingface_hub.utils import filter_repo_objects

    from expertalign.cli import PREFETCH_IGNORE, PREFETCH_PATTERNS

    repo = [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "model-00001-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.json",
        "merges.txt",
        "tokenizer.model",
        "chat_template.jinja",
        "modeling_custom.py",
        "tokenizer_custom.py",
        "configuration_x.py",
        "pytorch_model.bin",
        "flax_model.msgpack",
        "README.md",
        ".gitattributes",
    ]
    chosen = set(
        filter_repo_objects(repo, allow_patterns=PREFETCH_PATTERNS, ignore_patterns=PREFETCH_IGNORE)
    )
    assert not {f for f in chosen if f.endswith(".py")}
    assert chosen == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "model-00001-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.json",
        "merges.txt",
        "tokenizer.model",
        "chat_template.jinja",
    }


# --- the OpenAI-compatible backend: settings, and where the key may go --------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict] = []
    redirect_to: str | None = None

    def do_POST(self):  # noqa: N802 (http.server API)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        self.seen.append(
            {
                "auth": self.headers.get("Authorization"),
                "body": body,
                "port": self.server.server_address[1],
            }
        )
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.end_headers()
            return
        content = "\n".join(f"{i}. A cat sat on mat number {i} today." for i in range(1, 11))
        payload = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST  # noqa: N815 - a followed redirect would arrive as GET

    def log_message(self, *args):
        pass


@pytest.fixture
def servers():
    _Recorder.seen = []
    started = []
    for _ in range(2):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
    yield [f"http://127.0.0.1:{s.server_address[1]}" for s in started]
    for server in started:
        server.shutdown()
        server.server_close()


def test_openai_backend_samples_with_the_configured_settings(servers, monkeypatch):
    from expertalign.jobs.sentences import generation_backend

    monkeypatch.setenv("TEST_KEY", "sk-secret-123")
    config = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    from expertalign.config import validate_config

    validate_config(config)
    settings = {
        **config["sentences"],
        "backend": "openai",
        "openai_base_url": servers[0],
        "openai_api_key_env": "TEST_KEY",
        "temperature": 0.3,
        "top_p": 0.5,
        "max_new_tokens": 77,
        "generator": "m",
    }
    backend = generation_backend(settings)
    backend.generate(["Write facts about the noun 'cat'."], seed=0)
    body = _Recorder.seen[0]["body"]
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.3, 0.5, 77)


def test_openai_key_stays_out_of_repr_pickle_and_redirects(servers, monkeypatch):
    from expertalign.backends.openai_chat import OpenAIChatBackend
    from expertalign.config import ConfigError
    from expertalign.sentences import SentenceGenerationError

    monkeypatch.setenv("TEST_KEY", "sk-secret-123")
    _expect(
        lambda: OpenAIChatBackend("http://example.org/v1", "m", "TEST_KEY"),
        ConfigError,
        "sentences.openai_base_url",
        "'http://example.org/v1'",
        "https",
    )
    assert OpenAIChatBackend("http://example.org/v1", "m", "TEST_KEY", allow_insecure_http=True)
    _expect(
        lambda: OpenAIChatBackend(servers[0], "m", "TEST_KEY", temperature=0),
        ValueError,
        "temperature",
    )
    backend = OpenAIChatBackend(servers[0], "m", "TEST_KEY", retries=0)
    for text in (repr(backend), str(vars(backend)), pickle.dumps(backend).decode("latin-1")):
        assert "sk-secret-123" not in text
    assert "TEST_KEY" in repr(backend)
    _Recorder.redirect_to = servers[1] + "/v1/chat/completions"
    try:
        _expect(lambda: backend.generate(["hi"], seed=0), SentenceGenerationError, "HTTP 302")
    finally:
        _Recorder.redirect_to = None
    ports = {int(s.rsplit(":", 1)[1]) for s in servers[1:]}
    assert not [r for r in _Recorder.seen if r["port"] in ports], "followed the redirect"


def test_openai_backend_without_its_key_names_the_variable(monkeypatch):
    from expertalign.backends.openai_chat import OpenAIChatBackend
    from expertalign.sentences import SentenceGenerationError

    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    _expect(
        lambda: OpenAIChatBackend("https://api.example.org/v1", "m", "NO_SUCH_KEY_VAR"),
        SentenceGenerationError,
        "NO_SUCH_KEY_VAR",
    )


def test_cli_prefetch_refuses_a_bad_config_in_one_line(tmp_path, capsys):
    from expertalign.cli import main

    config = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    config["experts"]["taus"] = [0.5, 0.5]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["prefetch", "--configfile", str(path)])
    assert "experts.taus" in capsys.readouterr().err
