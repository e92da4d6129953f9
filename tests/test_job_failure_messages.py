"""A failed job says why in one line on Snakemake's terminal, naming its log, which keeps the
whole traceback; a misspelt Hub model fails with one ModelNotFoundError naming its config key,
not the Hub's chain of tracebacks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx2
import pytest
import yaml
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError
from huggingface_hub.utils import hf_raise_for_status
from workflow_helpers import REPO, SNAKEMAKE, TINY, snakemake

from expertalign import fetch, paths
from expertalign.jobs.runtime import failure_line
from expertalign.models import ModelAccessError, ModelNotFoundError, load_model

MISSPELT = "EleutherAI/pythia-70mm"

# A job script that fails two calls deep, with a cause and a two-line message.
FAILING_SCRIPT = """\
from expertalign.jobs import runtime

runtime.start_job(snakemake.log[0])


def read_table():
    raise ValueError("column 'word' missing")


def load():
    try:
        read_table()
    except ValueError as err:
        raise RuntimeError("the table cannot be loaded\\nsecond line of the message") from err


load()
"""


def _run_failing_rule(folder, script: str) -> subprocess.CompletedProcess:
    (folder / "scripts").mkdir()
    (folder / "scripts" / "boom.py").write_text(script)
    (folder / "Snakefile").write_text(
        textwrap.dedent(
            """\
            rule boom:
                output: "out.txt"
                log: "logs/boom.log"
                script: "scripts/boom.py"
            """
        )
    )
    return subprocess.run(
        [SNAKEMAKE, "--cores", "1", "--nolock"],
        cwd=folder,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=300,
    )


def test_a_failed_job_shows_one_line_and_its_log_keeps_the_traceback(tmp_path):
    result = _run_failing_rule(tmp_path, FAILING_SCRIPT)
    out = result.stdout
    assert result.returncode != 0, out
    line = "rule boom failed: RuntimeError: the table cannot be loaded (log: logs/boom.log)"
    assert line in out.splitlines(), out
    # Snakemake's own error still names the rule and the log
    assert "Error in rule boom" in out and "log: logs/boom.log" in out, out
    for hidden in ("Traceback", "in read_table", "raise ValueError", "second line", "ValueError"):
        assert hidden not in out, (hidden, out)
    log = (tmp_path / "logs" / "boom.log").read_text()
    assert "ERROR expertalign.jobs.runtime: rule boom failed" in log, log
    for kept in (
        "Traceback (most recent call last)",
        ", in read_table",
        "ValueError: column 'word' missing",
        "The above exception was the direct cause of the following exception",
        "RuntimeError: the table cannot be loaded\nsecond line of the message",
    ):
        assert kept in log, (kept, log)
    assert line not in log  # the terminal line goes to the terminal only


def _python(tmp_path, code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(tmp_path / "job.log")],
        text=True,
        capture_output=True,
        timeout=120,
    )


def test_outside_snakemake_the_line_says_job_and_exits_with_status_1(tmp_path):
    result = _python(
        tmp_path,
        """
        import sys
        from expertalign.jobs.runtime import start_job
        start_job(sys.argv[1])
        print("working", flush=True)
        raise KeyError("beta")
        """,
    )
    assert result.returncode == 1
    assert result.stdout == "working\n"
    assert result.stderr == f"job failed: KeyError: 'beta' (log: {tmp_path / 'job.log'})\n"
    assert "KeyError: 'beta'" in (tmp_path / "job.log").read_text()


def test_a_job_that_exits_on_purpose_prints_nothing(tmp_path):
    """sys.exit and JobTerminated (a SIGTERM) are SystemExit: no failure line, their status."""
    result = _python(
        tmp_path,
        """
        import sys
        from expertalign.jobs.runtime import start_job
        start_job(sys.argv[1])
        sys.exit(3)
        """,
    )
    assert (result.returncode, result.stderr) == (3, "")
    assert "Traceback" not in (tmp_path / "job.log").read_text()


def test_failure_line_quotes_the_first_line_of_a_message_only():
    assert failure_line(ValueError("\n  first\nsecond"), "r", "l.log") == (
        "rule r failed: ValueError: first (log: l.log)"
    )
    assert failure_line(MemoryError(), "", "l.log") == "job failed: MemoryError (log: l.log)"
    long = failure_line(ValueError("x" * 5000), "r", "l.log")
    assert len(long) < 1100 and long.endswith("x … (log: l.log)")

    class Unprintable(Exception):
        def __str__(self):
            raise TypeError("no")

    assert failure_line(Unprintable(), "r", "l.log") == "rule r failed: Unprintable (log: l.log)"


# --- a misspelt Hub model -----------------------------------------------------------------


def test_prefetch_job_of_a_misspelt_model_names_its_config_key(tmp_path):
    """The real workflow's prefetch job, offline (no network here), for a model not in the
    cache: one line on the terminal, one traceback (no chained Hub errors) in the log."""
    config = yaml.safe_load((REPO / TINY).read_text())
    config["models"][0] = {"name": "pythia", "source": MISSPELT, "revisions": ["main"]}
    results = tmp_path / "results"
    config["results"] = str(results)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    slug, revision = paths.source_slug(MISSPELT), paths.fetched_revision(MISSPELT, "main")
    marker = paths.prefetch_marker(str(results), slug, revision)
    result = snakemake(
        marker,
        "--nolock",
        "--cores",
        "1",
        "--configfile",
        str(configfile),
        env={"HF_HOME": str(tmp_path / "hf")},
        check=False,
        timeout=600,
    )
    out = result.stdout
    assert result.returncode != 0, out
    log_path = results / "logs" / "prefetch" / slug / f"{revision}.log"
    (line,) = [line for line in out.splitlines() if line.startswith("rule prefetch failed:")]
    assert line.startswith(
        "rule prefetch failed: ModelNotFoundError: config key models[0].source: "
        f"prefetch {MISSPELT}@main: the Hub cannot be reached and the model is not in the cache"
    ), line
    assert f"check the name at https://huggingface.co/{MISSPELT}" in line
    assert line.endswith(f"(log: {log_path})"), line
    assert "Traceback" not in out, out
    log = log_path.read_text()
    assert log.count("Traceback (most recent call last)") == 1, log
    assert ", in _download" in log  # the frames where it was raised
    assert "config key models[0].source: prefetch" in log
    for chained in ("direct cause", "During handling", "httpx", "OfflineModeIsEnabled"):
        assert chained not in log, (chained, log)
    assert not (REPO / marker).exists() and not list((results / "prefetch").rglob("*.json"))


def _hub_error(status: int, repo: str = "org/absent") -> Exception:
    """What huggingface_hub itself raises for the Hub's answer to a model that does not exist."""
    url = f"https://huggingface.co/api/models/{repo}/revision/main"
    response = httpx2.Response(
        status, request=httpx2.Request("GET", url), headers={"X-Error-Code": "RepoNotFound"}
    )
    try:
        hf_raise_for_status(response)
    except Exception as err:  # noqa: BLE001 - the point is which type it is
        return err
    raise AssertionError("hf_raise_for_status accepted an error response")


@pytest.mark.parametrize("status", [401, 404])
def test_prefetch_of_a_misspelt_model_online_raises_one_error(status, monkeypatch):
    """The Hub answers a misspelt name with 401 without a token (it might be private) and 404
    with one; snapshot_download is patched to raise that (the Hub cannot be reached here)."""
    error = _hub_error(status)
    assert type(error) is RepositoryNotFoundError

    def chained(*args, **kwargs):
        raise error from ConnectionResetError("what the Hub's HTTP client raised first")

    monkeypatch.setattr("huggingface_hub.snapshot_download", chained)
    with pytest.raises(ModelNotFoundError) as caught:
        fetch.prefetch([("org/absent", "main")])
    assert (caught.value.__cause__, caught.value.__suppress_context__) == (None, True)
    message = str(caught.value)
    assert "\n" not in message
    if status == 401:
        assert type(caught.value) is ModelAccessError
        assert "Check the name at https://huggingface.co/org/absent" in message, message
    else:
        assert type(caught.value) is ModelNotFoundError
        assert message.startswith(
            "prefetch org/absent@main: the Hub has no model org/absent; check the name at "
            "https://huggingface.co/org/absent (RepositoryNotFoundError: 404 Client Error.)"
        ), message


def test_prefetch_offline_quotes_the_hubs_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFoundError) as caught:
        fetch.prefetch([(MISSPELT, "main")])
    assert caught.value.__suppress_context__ and caught.value.__cause__ is None
    assert "(LocalEntryNotFoundError: Cannot find an appropriate cached snapshot" in str(
        caught.value
    )


def test_loading_a_model_that_is_not_there_raises_one_error(monkeypatch):
    """transformers wraps the Hub's errors in an OSError with a several-line message."""

    def absent(*args, **kwargs):
        try:
            raise LocalEntryNotFoundError("Cannot find an appropriate cached snapshot folder")
        except LocalEntryNotFoundError as err:
            raise OSError(
                "We couldn't connect to 'https://huggingface.co' to load the files.\n"
                "Check your internet connection or see the offline mode docs."
            ) from err

    monkeypatch.setattr("transformers.AutoTokenizer.from_pretrained", absent)
    with pytest.raises(ModelNotFoundError) as caught:
        load_model(MISSPELT, dtype="float32", device="cpu")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    message = str(caught.value)
    assert f"model {MISSPELT} could not be loaded (OSError: We couldn't connect" in message
    assert "\n" not in message and "Check your internet" not in message
    assert f"expertalign prefetch {MISSPELT}" in message


def test_config_keys_name_every_entry_that_loads_a_model():
    config = {
        "models": [
            {"name": "a", "source": "org/a"},
            {"name": "b", "source": "org/b"},
            {"name": "a2", "source": "org/a"},
        ],
        "sentences": {"generator": "org/g", "sources": {"web": {"generator": "org/a"}, "x": None}},
        "pilot": {"model": "org/a"},
    }
    assert fetch.config_keys(config, "org/a") == [
        "models[0].source",
        "models[2].source",
        "sentences.sources.web.generator",
        "pilot.model",
    ]
    assert fetch.config_keys(config, "org/g") == ["sentences.generator"]
    # a pilot naming a configured model is that model's entry
    assert fetch.config_keys({**config, "pilot": {"model": "b"}}, "org/b") == ["models[1].source"]
    assert fetch.config_keys(config, "embedded") == []

    try:
        raise ModelAccessError("model org/a: gated")
    except ModelAccessError as err:
        raised = err
    named = fetch.naming_config_keys(raised, config, "org/g")
    assert type(named) is ModelAccessError and str(named) == (
        "config key sentences.generator: model org/a: gated"
    )
    assert named.__traceback__ is raised.__traceback__
    assert fetch.naming_config_keys(raised, config, "org/zzz") is raised
