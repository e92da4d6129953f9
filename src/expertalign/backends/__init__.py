"""Backends that turn prompts into completions for :mod:`expertalign.generation`.

    >>> from expertalign.backends.transformers_sampler import TransformersBackend
    >>> backend = TransformersBackend(model, tokenizer, max_new_tokens=320, batch_size=32)
    >>> from expertalign.backends.openai_chat import OpenAIChatBackend
    >>> backend = OpenAIChatBackend("http://localhost:8000/v1", "my-model")  # $OPENAI_API_KEY
    >>> backend.generate(["Write 10 facts about the noun 'cat' ..."], seed=0)  # one per prompt

``transformers_sampler`` holds everything that depends on the internals of ``transformers`` (the
KV cache, the keyword names of ``forward``); ``openai_chat`` needs nothing beyond the standard
library. Both follow :class:`expertalign.generation.Backend`.
"""
