"""The OpenAI-compatible backend: bad settings are named and the key goes nowhere else."""

from __future__ import annotations

import http.server
import json
import pickle
import threading

import pytest
import yaml
from workflow_helpers import REPO, _expect

TINY = REPO / "tests/data/tiny_config.yaml"


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
