"""A generation backend for any OpenAI-compatible chat endpoint, through urllib.

    >>> from expertalign.backends.openai_chat import OpenAIChatBackend
    >>> backend = OpenAIChatBackend("http://localhost:8000/v1", "my-model",
    ...                             api_key_env="OPENAI_API_KEY", temperature=1.0)
    >>> backend.generate(["Write 10 facts about ..."], seed=0)    # one completion per prompt

Failures (no key, HTTP errors after the retries, an unreachable server, an answer without a
message) raise :class:`expertalign.sentences.SentenceGenerationError`.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from expertalign.seeds import mix_seed
from expertalign.sentences import SentenceGenerationError

__all__ = ["OpenAIChatBackend"]


class OpenAIChatBackend:
    """Any OpenAI-compatible `/v1/chat/completions` endpoint (OpenAI, vLLM, llama.cpp server,
    Ollama, ...), one request per prompt, through urllib.

    `base_url` may be "http://host:port", ".../v1" or the full ".../v1/chat/completions".
    The API key is read from the environment variable `api_key_env` (local servers that ignore
    keys still need it set, to any value, so that a missing key is never silent). It is read
    again for every request and never kept on the object (nor in its repr, a pickle or a log),
    it is only sent over https or to this machine unless `allow_insecure_http`, and redirects
    are refused, so that it never follows one to another host.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 1.0,
        top_p: float = 0.95,
        max_tokens: int = 600,
        timeout_s: float = 120.0,
        retries: int = 3,
        parallel_calls: int = 1,
        allow_insecure_http: bool = False,
    ) -> None:
        from expertalign.config import check_openai_url

        if not 0 < temperature <= 2 or not 0 < top_p <= 1 or max_tokens < 1:
            raise ValueError(
                "need 0 < temperature <= 2, 0 < top_p <= 1 and max_tokens >= 1, "
                f"got {temperature}, {top_p}, {max_tokens}"
            )
        check_openai_url(base_url, allow_insecure_http)
        key = os.environ.get(api_key_env, "")
        if not key:
            raise SentenceGenerationError(
                f"OpenAIChatBackend needs an API key in the environment variable {api_key_env}, "
                f"which is not set; export {api_key_env}=... (any value for a local server "
                "that ignores keys)"
            )
        url = base_url.rstrip("/")
        if not url.endswith("/chat/completions"):
            url = (url if url.endswith("/v1") else url + "/v1") + "/chat/completions"
        self.url = url
        self.model = model
        self.name = model
        self.api_key_env = api_key_env
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.retries = retries
        self.parallel_calls = parallel_calls

    def __repr__(self) -> str:
        return (
            f"OpenAIChatBackend(url={self.url!r}, model={self.model!r}, "
            f"api key from ${self.api_key_env})"
        )

    def generate(self, prompts: Sequence[str], seed: int) -> list[str]:
        return [
            self._complete(p, mix_seed(seed, "call", i) % (2**31)) for i, p in enumerate(prompts)
        ]

    def _complete(self, prompt: str, seed: int) -> str:
        body = json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": self.temperature,
                "top_p": self.top_p,
                "max_tokens": self.max_tokens,
                "seed": seed,
            }
        ).encode()
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise SentenceGenerationError(
                f"the environment variable {self.api_key_env} with the API key is no longer set"
            )
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        )
        opener = urllib.request.build_opener(_NoRedirect)
        for attempt in range(self.retries + 1):
            try:
                with opener.open(request, timeout=self.timeout_s) as resp:
                    payload = json.loads(resp.read().decode("utf-8"))
                break
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:500]
                # Rate limits and server hiccups are worth a retry; 4xx otherwise are not.
                if exc.code in (429, 500, 502, 503, 504) and attempt < self.retries:
                    time.sleep(min(2.0**attempt, 30.0))
                    continue
                raise SentenceGenerationError(
                    f"{self.url} answered HTTP {exc.code} for model '{self.model}': {detail}"
                ) from exc
            except (urllib.error.URLError, TimeoutError) as exc:
                if attempt < self.retries:
                    time.sleep(min(2.0**attempt, 30.0))
                    continue
                raise SentenceGenerationError(f"cannot reach {self.url}: {exc}") from exc
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise SentenceGenerationError(
                f"{self.url} returned no choices[0].message.content: {str(payload)[:300]}"
            ) from exc
        return str(content or "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib forwards the Authorization header on redirects, to any host: refuse them."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        raise urllib.error.HTTPError(
            req.full_url,
            code,
            f"redirect to {newurl} refused (the API key is never sent on)",
            headers,
            fp,
        )
