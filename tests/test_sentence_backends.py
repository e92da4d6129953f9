"""Sentence backends: transformers sampling on a tiny model, the OpenAI API, the real model."""

from __future__ import annotations

import http.server
import json
import re
import threading

import pytest
from synthetic_data import CAT

from expertalign.backends.openai_chat import OpenAIChatBackend
from expertalign.backends.transformers_sampler import TransformersBackend
from expertalign.generation import generate_concept_sentences
from expertalign.sentences import SentenceGenerationError

# --- the transformers backend on a tiny random model --------------------------------------


@pytest.fixture
def one_thread():
    """Tiny matmuls on a busy 2-core machine are much faster without OpenMP hand-offs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_backend(**kwargs):
    from tiny_models import tiny_model, word_tokenizer

    tok = word_tokenizer()
    tok.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    model = tiny_model("llama")
    # No EOS, so that every row runs to its limit (the random model would end rows at random).
    model.config.eos_token_id = model.generation_config.eos_token_id = None
    backend = TransformersBackend(model, tok, **kwargs)
    # The word tokenizer has no newline, so keep raw token ids instead of lines.
    backend._text = lambda ids, ended_ok: " ".join(map(str, ids))
    return backend, tok


def test_sampling_loop_matches_greedy_generate_with_padding_and_shared_prefill(one_thread):
    import torch

    backend, tok = tiny_backend(max_new_tokens=6, batch_size=8, top_k=1, temperature=1.0)
    prompts = ["the cat sat", "a dog barked loudly at the postman", "the cat sat", "red car drove"]
    got = backend.generate(prompts, seed=0)
    tok.padding_side = "left"
    rendered = [backend._render(p) for p in prompts]
    enc = tok(rendered, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        ref = backend.model.generate(
            **enc, do_sample=False, max_new_tokens=6, pad_token_id=tok.pad_token_id
        )
    want = [" ".join(map(str, row)) for row in ref[:, enc["input_ids"].shape[1] :].tolist()]
    assert got == want
    assert got[0] == got[2]


def test_sampling_is_seeded_and_stop_flags_prune_rows(one_thread):
    backend, _ = tiny_backend(max_new_tokens=12, batch_size=3, check_every=2, temperature=1.5)
    prompts = ["the cat sat"] * 4
    a, b = backend.generate(prompts, seed=1), backend.generate(prompts, seed=1)
    assert a == b and backend.generate(prompts, seed=2) != a
    flags = [True, False, False, False]
    out = backend.generate(prompts, seed=1, stop_when=lambda texts: flags)
    assert len(out[0].split()) == 2  # stopped at the first check
    assert [len(t.split()) for t in out[1:]] == [12, 12, 12]
    out = backend.generate(prompts, seed=1, stop_when=lambda texts: True)
    assert [len(t.split()) for t in out] == [2, 2, 2, 0]  # the second batch never starts


def test_rows_stop_after_max_lines_or_a_runaway_line(one_thread):
    backend, tok = tiny_backend(max_new_tokens=40, batch_size=4, temperature=3.0, max_line_tokens=5)
    out = backend.generate(["the cat sat"] * 3, seed=0)
    assert [len(t.split()) for t in out] == [6, 6, 6]  # the 6th token of one line stops it
    backend, tok = tiny_backend(max_new_tokens=40, batch_size=4, temperature=3.0, max_lines=2)
    # The word tokenizer has no line break; let a third of the vocabulary play that part.
    backend._newline_ids = frozenset(range(0, 64, 3))
    for text in backend.generate(["the cat sat"] * 3, seed=0):
        ids = [int(t) for t in text.split()]
        breaks = [i for i, t in enumerate(ids) if t in backend._newline_ids]
        assert len(breaks) == 2 and breaks[-1] == len(ids) - 1  # stopped at the second break


def test_word_bias_pulls_sampling_towards_the_concept_word(one_thread):
    prompts = ["the cat sat"] * 4
    plain, tok = tiny_backend(max_new_tokens=10, batch_size=4, temperature=1.0)
    biased, _ = tiny_backend(max_new_tokens=10, batch_size=4, temperature=1.0, word_bias=50.0)
    dog = tok.convert_tokens_to_ids("dog")
    # "Dog" is unknown to the word tokenizer, so its first token is [UNK].
    wanted = {dog, tok.unk_token_id}

    def sampled(backend, **kwargs):
        return [
            int(t) for text in backend.generate(prompts, seed=3, **kwargs) for t in text.split()
        ]

    assert set(sampled(biased, words=["dog"])) <= wanted
    assert not set(sampled(plain, words=["dog"])) <= wanted  # bias 0 leaves the model as is
    assert sampled(biased) == sampled(plain)  # no words, no bias


# --- the OpenAI-compatible backend --------------------------------------------------------


class _ChatHandler(http.server.BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        if body["model"] == "broken":
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b'{"error": "no such model"}')
            return
        prompt = body["messages"][0]["content"]
        # the word is quoted in the short prompts, "about the concept cat as" in the paper's
        word = re.search(r"'(\w+)'|the concept (\w+) as", prompt).group(1, 2)
        word = word[0] or word[1]
        content = "\n".join(
            f"{i}. Seed {body['seed']} line {i} about a {word} today." for i in range(1, 11)
        )
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def chat_server():
    _ChatHandler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_openai_backend_talks_to_a_chat_completions_endpoint(chat_server, monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test")
    backend = OpenAIChatBackend(chat_server + "/v1", "tiny-chat", api_key_env="TEST_KEY")
    df = generate_concept_sentences(CAT, backend, n_sentences=12, seed=3, max_rounds=1)
    assert len(df) == 12 and df["source"].iat[0] == "tiny-chat"
    requests = _ChatHandler.requests
    assert len(requests) == 2
    assert {r["path"] for r in requests} == {"/v1/chat/completions"}
    assert {r["auth"] for r in requests} == {"Bearer sk-test"}
    bodies = [r["body"] for r in requests]
    assert bodies[0]["model"] == "tiny-chat" and bodies[0]["messages"][0]["role"] == "user"
    assert "facts" in bodies[0]["messages"][0]["content"]
    assert "short story" in bodies[1]["messages"][0]["content"]
    assert bodies[0]["seed"] != bodies[1]["seed"]
    # A bare host gets /v1/chat/completions appended too.
    assert OpenAIChatBackend(chat_server, "m", api_key_env="TEST_KEY").url.endswith(
        "/v1/chat/completions"
    )


def test_openai_backend_errors(chat_server, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(SentenceGenerationError, match="NO_SUCH_KEY_VAR.*not set"):
        OpenAIChatBackend(chat_server, "tiny-chat", api_key_env="NO_SUCH_KEY_VAR")
    monkeypatch.setenv("TEST_KEY", "x")
    broken = OpenAIChatBackend(chat_server, "broken", api_key_env="TEST_KEY", retries=0)
    with pytest.raises(SentenceGenerationError, match="HTTP 400.*no such model"):
        broken.generate(["hi"], seed=0)


# --- the real embedded model --------------------------------------------------------------


@pytest.mark.slow
def test_embedded_smollm2_generates_real_sentences():
    from expertalign.models import load_model

    lm = load_model("embedded", device="cpu")  # the workflow's own path to the GGUF
    model, tok = lm.model, lm.tokenizer
    # The generation settings of config/config.yaml.
    backend = TransformersBackend(
        model,
        tok,
        max_new_tokens=320,
        batch_size=32,
        temperature=0.8,
        max_lines=12,
        max_line_tokens=48,
        word_bias=2.0,
        name="smollm2",
    )
    df = generate_concept_sentences(
        CAT, backend, n_sentences=6, seed=0, max_rounds=8, prompts="short"
    )
    assert len(df) == 6 and df["prompt"].tolist() == ["facts"] * 3 + ["stories"] * 3
    assert df["text"].str.contains(r"\bcats?\b", case=False).all()
    assert df["text"].str.split().str.len().ge(4).all()
