"""Long jobs log their progress while they run, so that ``tail -f`` on a job's log shows life.

The expert-shard job (:func:`expertalign.jobs.experts.experts`) and the sentence job
(:func:`expertalign.jobs.sentences.make_sentences`) run in a subprocess with their log set up as
a rule's is (``setup_logging``) and ``EXPERTALIGN_PROGRESS_SECONDS`` small; the test reads the log
while the process is alive and checks that progress lines (``forward pass: k of n sentences``,
``concept k of n (...)``, generation rounds) are there before it exits. The work is real but
tiny, so each job is slowed where the work happens (a sleep per forward batch, per concept's AP,
per decoding step of a scripted generator), which keeps it running long enough to be watched on
any machine without changing what it computes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from expertalign.progress import (
    PROGRESS_SECONDS_ENV,
    ConceptProgress,
    Heartbeat,
    Progress,
    format_duration,
    progress_seconds,
)

SRC = Path(__file__).resolve().parents[1] / "src"

# Run in the subprocess: the real expert-shard job, on a saved tiny model, with sleeps added
# where the work happens (the numbers it computes are untouched).
EXPERTS_JOB = """
import sys, time
from expertalign.jobs.runtime import setup_logging
log_path, model_dir, bank_file, output, *files = sys.argv[1:]
setup_logging(log_path, threads=1)
from expertalign.ap import SortedNegatives
from expertalign.jobs import experts

load = experts.load_model_for
def slow_load(spec, revision, *commit):
    lm = load(spec, revision, *commit)
    # once per forward batch: the embeddings run once per batch
    lm.model.get_input_embeddings().register_forward_pre_hook(lambda *_: time.sleep(0.005))
    return lm
experts.load_model_for = slow_load
average_precision = SortedNegatives.average_precision
def slow_ap(self, *args, **kwargs):
    time.sleep(0.4)
    return average_precision(self, *args, **kwargs)
SortedNegatives.average_precision = slow_ap

concepts = [file.rsplit("/", 1)[-1].removesuffix(".parquet") for file in files]
experts.experts(
    files, bank_file, output,
    model={"name": "tiny", "source": model_dir, "dtype": "float32"},
    revision="main", concepts=concepts, n_negatives=1000,
    settings={"max_length": 32, "max_tokens": 40, "unit_stats": False},
)
"""

# Run in the subprocess: the real sentence job with a scripted generator that reveals a line
# of each completion every few "decoding steps" and asks stop_when, as TransformersBackend does.
SENTENCES_JOB = """
import sys, time
from expertalign.jobs.runtime import setup_logging
log_path, batch_dir, resume_dir = sys.argv[1:]
setup_logging(log_path, threads=1)
from expertalign.jobs import sentences

WORDS = ["cat", "dog", "fox", "owl"]
ADJ = ["red", "old", "small", "quiet", "bright", "tall"]
THINGS = ["house", "river", "garden", "bridge", "market", "forest"]

class SlowBackend:
    name, parallel_calls = "scripted", 2
    def __init__(self):
        self.calls = {}
    def generate(self, prompts, seed, stop_when=None):
        full = []
        for p, prompt in enumerate(prompts):
            word = next(w for w in WORDS if f"'{w}'" in prompt)
            call = self.calls[word] = self.calls.get(word, 0) + 1
            lines = [
                f"{i + 1}. The {word} slept near the {ADJ[i % 6]} {THINGS[(p + call) % 6]} today."
                for i in range(10)
            ]
            if word == "dog" and call <= 2:  # dog's first round yields a single sentence
                lines = [lines[0]] + [f"{i}. Nothing to say here at all." for i in range(2, 11)]
            full.append(lines)
        shown = 0
        while shown < 10:
            time.sleep(0.15)  # a few "decoding steps"
            shown += 1
            so_far = ["\\n".join(lines[:shown]) for lines in full]
            verdict = stop_when(so_far)
            if verdict is True or (verdict is not False and all(verdict)):
                break
        return so_far

backend = SlowBackend()
sentences.generation_backend = lambda settings: backend
rows = [{"concept": w, "word": w, "pos": "noun", "definition": f"a {w}"} for w in WORDS]
sentences.make_sentences(
    rows, batch_dir,
    settings={"backend": "transformers", "n_positives": 8, "seed": 0, "max_rounds": 3,
              "prompts": "short"},
    fingerprints={w: "fp" for w in WORDS}, resume_dir=resume_dir,
)
"""


def _run_and_watch(
    script: str, args: list[str], log_path: Path, seconds: float, tmp_path: Path
) -> tuple[list[str], list[str]]:
    """Run ``script`` in a subprocess; return the log lines read while it was still alive
    (the process was checked after the read), and all lines once it has exited (rc 0)."""
    env = {
        **os.environ,
        PROGRESS_SECONDS_ENV: str(seconds),
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    console = tmp_path / "console.txt"
    with open(console, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(log_path), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        alive: list[str] = []
        deadline = time.monotonic() + 120
        try:
            while True:
                text = log_path.read_text() if log_path.exists() else ""
                if proc.poll() is not None:
                    break
                # read before the process was seen alive: every full line was written while it ran
                alive = text.splitlines()[: text.count("\n")]
                if time.monotonic() > deadline:
                    pytest.fail(f"job still running after 120 s; log so far:\n{text}")
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    final = log_path.read_text().splitlines() if log_path.exists() else []
    assert proc.returncode == 0, (
        f"job failed (rc {proc.returncode}):\n{console.read_text()}\n" + "\n".join(final)
    )
    return alive, final


def _messages(lines: list[str]) -> list[str]:
    """The messages of log lines ("<date> <time> INFO <logger>: <message>")."""
    return [line.split(": ", 1)[1] for line in lines if " INFO " in line and ": " in line]


def test_an_expert_shard_logs_progress_while_it_runs(tmp_path):
    from tiny_models import WORDS, tiny_model, word_tokenizer

    from expertalign.negatives import build_negative_bank

    model_dir = tmp_path / "model"
    tiny_model("gpt_neox").save_pretrained(model_dir)
    word_tokenizer().save_pretrained(model_dir)
    rng = np.random.default_rng(0)

    def frame(concept: str, n: int) -> pd.DataFrame:
        texts = [
            " ".join(rng.choice(WORDS, size=int(rng.integers(5, 9)))) + f" {concept}"
            for _ in range(n)
        ]
        return pd.DataFrame(
            {
                "sentence_id": [f"{concept}:{i:04d}" for i in range(n)],
                "concept": concept,
                "text": texts,
                "prompt": "facts",
                "source": "test",
            }
        )

    shard = ["cat", "dog", "car", "road", "chair", "table"]
    frames = [frame(c, 60) for c in shard] + [frame(f"filler{i}", 100) for i in range(10)]
    files = []
    for concept, sentences in zip(shard, frames):
        files.append(str(tmp_path / f"{concept}.parquet"))
        sentences.iloc[:40].to_parquet(files[-1])
    bank_file = tmp_path / "bank.parquet"
    build_negative_bank(frames, size=1200, seed=0, version="t").to_parquet(bank_file)
    log_path, output = tmp_path / "logs" / "shard.log", tmp_path / "shard.parquet"

    alive, final = _run_and_watch(
        EXPERTS_JOB,
        [str(model_dir), str(bank_file), str(output), *files],
        log_path,
        0.25,
        tmp_path,
    )
    running = _messages(alive)
    heartbeat = re.compile(
        r"forward pass: (\d+) of (\d+) sentences, [\d.]+ sentences/s, elapsed \d+:\d\d, "
        r"ETA (\d+:\d\d|\?)$"
    )
    beats = [m for m in map(heartbeat.match, running) if m]
    assert beats, "no forward-pass heartbeat in the log while the job ran:\n" + "\n".join(alive)
    assert any(int(m[1]) < int(m[2]) for m in beats), "no heartbeat from within the forward pass"
    concept_line = re.compile(
        r"concept (\d) of 6 \((\w+)\): (\d+) sentences \((\d+) positives, (\d+) negatives\), "
        r"[\d.]+ sentences/s, elapsed \d+:\d\d, ETA \d+:\d\d$"
    )
    assert any((m := concept_line.match(line)) and int(m[1]) < 6 for line in running), (
        "no concept line in the log while the job ran:\n" + "\n".join(alive)
    )

    messages = _messages(final)
    done = [m for m in map(concept_line.match, messages) if m]
    assert [(int(m[1]), m[2]) for m in done] == list(enumerate(shard, start=1))
    assert all(int(m[3]) == int(m[4]) + int(m[5]) == 1040 for m in done)
    assert done[-1][0].endswith("ETA 0:00")
    total = next(int(m[2]) for m in beats)
    assert f"forward pass: {total} sentences in" in "\n".join(messages)
    assert re.fullmatch(rf"wrote {re.escape(str(output))}: 6 concepts", messages[-1])
    assert pd.read_parquet(output)["concept"].nunique() == 6


def test_sentence_generation_logs_progress_while_it_runs(tmp_path):
    log_path = tmp_path / "logs" / "sentences.log"
    alive, final = _run_and_watch(
        SENTENCES_JOB,
        [str(tmp_path / "batch"), str(tmp_path / "resume")],
        log_path,
        0.1,
        tmp_path,
    )
    running = _messages(alive)
    within = re.compile(
        r"(\w+): round (\d) of at most 3, (\d) of 8 sentences so far, elapsed \d+:\d\d$"
    )
    assert any(map(within.match, running)), (
        "no heartbeat from within a generation round while the job ran:\n" + "\n".join(alive)
    )
    concept_line = re.compile(
        r"concept (\d) of 4 \((\w+)\): 8 sentences in (\d) rounds?, [\d.]+ sentences/s, "
        r"elapsed \d+:\d\d, ETA \d+:\d\d$"
    )
    assert any((m := concept_line.match(line)) and int(m[1]) < 4 for line in running), (
        "no concept line in the log while the job ran:\n" + "\n".join(alive)
    )

    done = [m for m in map(concept_line.match, _messages(final)) if m]
    assert [(int(m[1]), m[2], int(m[3])) for m in done] == [
        (1, "cat", 1),
        (2, "dog", 2),
        (3, "fox", 1),
        (4, "owl", 1),
    ]
    assert done[-1][0].endswith("ETA 0:00")
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == [
        f"{w}.parquet" for w in ("cat", "dog", "fox", "owl")
    ]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_rate_eta_and_interval(caplog):
    import logging

    clock, logger = FakeClock(), logging.getLogger("expertalign.test_progress")
    with caplog.at_level(logging.INFO, logger=logger.name):
        forward = Progress(
            "forward pass", 5000, "sentences", logger=logger, seconds=30, clock=clock
        )
        for _ in range(10):  # 10 batches of 100 sentences, 5 s each: one line, at 30 s
            clock.now += 5
            forward.advance(100)
        forward.finish()
        concepts = ConceptProgress(3, "sentences", logger=logger, clock=clock)
        concepts.skipped("cat", "taken from an earlier job")
        clock.now += 40
        concepts.done("dog", 400, "(20 positives, 380 negatives)")
        clock.now += 2
        concepts.done("fox", 12, "in 2 rounds")
    assert [r.getMessage() for r in caplog.records] == [
        "forward pass: 600 of 5000 sentences, 20.0 sentences/s, elapsed 0:30, ETA 3:40",
        "forward pass: 1000 sentences in 0:50, 20.0 sentences/s",
        "concept 1 of 3 (cat): taken from an earlier job",
        "concept 2 of 3 (dog): 400 sentences (20 positives, 380 negatives), 10.0 sentences/s, "
        "elapsed 0:40, ETA 0:40",
        "concept 3 of 3 (fox): 12 sentences in 2 rounds, 9.8 sentences/s, elapsed 0:42, ETA 0:00",
    ]


def test_heartbeat_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(PROGRESS_SECONDS_ENV, raising=False)
    assert progress_seconds() == 30
    monkeypatch.setenv(PROGRESS_SECONDS_ENV, "0.5")
    assert Heartbeat().seconds == 0.5
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv(PROGRESS_SECONDS_ENV, bad)
        with pytest.raises(ValueError, match=PROGRESS_SECONDS_ENV):
            progress_seconds()
    clock = FakeClock()
    beat = Heartbeat(10, clock=clock)
    assert not beat.due()
    clock.now += 10
    assert beat.due() and not beat.due()
    assert [format_duration(s) for s in (0, 42.4, 250, 3723, float("nan"))] == [
        "0:00",
        "0:42",
        "4:10",
        "1:02:03",
        "?",
    ]
