#!/usr/bin/env python3
"""Build an offline Hugging Face cache of tiny random GPT-NeoX models with Pythia-like branches.

The rehearsal (project issue 19) loads its models exactly as a cluster loads Pythia: by Hub name
and ``revision=`` with ``HF_HUB_OFFLINE=1``, from the cache under ``HF_HOME``. This script writes
that cache without any network: for each model (default ``rehearsal/neox-small`` and
``rehearsal/neox-large``) and each checkpoint branch (default ``step1``, ``step512``,
``step143000``; ``main`` points at the last one, as on the Hub), one commit laid out as
huggingface_hub lays out a download::

    $HF_HOME/hub/models--rehearsal--neox-small/
        refs/step512                 -> the commit's 40-hex id (one line, no newline)
        refs/main                    -> the last branch's commit
        blobs/<sha>                  -> file contents (git blob SHA-1, or SHA-256 for weights)
        snapshots/<commit>/config.json, model.safetensors, tokenizer.json,
                           tokenizer_config.json, special_tokens_map.json, generation_config.json
                                     -> relative symlinks into ../../blobs/

The models are real ``GPTNeoXForCausalLM`` (module names ``gpt_neox.layers.N.attention.
query_key_value``, ``gpt_neox.layers.N.mlp.dense_h_to_4h`` ...), Pythia's architecture options
(parallel residual, rotary on 25 % of the head) at toy width. Every (model, branch) has its own
seeded weights, so a wrong revision is visible in the numbers. The tokenizer is a byte-level BPE
(Pythia's kind: any text tokenizes, no unknown tokens) trained in a few seconds on the Brown
corpus of ``<data-dir>/nltk_data``, with ``<|endoftext|>`` as bos/eos/unk like Pythia's; all
models and branches share it (the branches of a Pythia model do too).

A manifest, ``$HF_HOME/rehearsal_hub.json``, records per (model, branch) the commit and a
fingerprint of the saved weights (the sum and first values of layer 0's query_key_value weight)
for ``verify_hub.py``.

Use::

    .venv/bin/python tools/rehearsal/build_hub.py --hf-home /tmp/rehearsal/hf
    HF_HOME=/tmp/rehearsal/hf HF_HUB_OFFLINE=1 .venv/bin/python tools/rehearsal/verify_hub.py

The output is deterministic for the same arguments (weights, tokenizer and commit ids).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

DEFAULT_BRANCHES = ["step1", "step512", "step143000"]

# name -> GPT-NeoX shape (Pythia's options; widths far below pythia-70m's 512 x 6 layers)
SIZES: dict[str, dict[str, int]] = {
    "rehearsal/neox-small": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
    ),
    "rehearsal/neox-large": dict(
        hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256
    ),
}
EOT = "<|endoftext|>"


def train_tokenizer(data_dir: Path, vocab_size: int, max_sentences: int):
    """A byte-level BPE trained on Brown sentences (deterministic: one thread, fixed order)."""
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from expertalign.corpus import Corpus

    texts = Corpus.brown(data_dir / "nltk_data").texts[:max_sentences]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=EOT
    )
    fast.model_max_length = 2048
    return fast, len(texts)


def neox_model(name: str, vocab_size: int, seed: int):
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(
        vocab_size=vocab_size,
        max_position_embeddings=2048,
        rotary_pct=0.25,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
        **SIZES[name],
    )
    torch.manual_seed(seed)
    return GPTNeoXForCausalLM(config).eval()  # one fresh seeded draw per (model, branch)


def _seed(name: str, branch: str, base: int) -> int:
    digest = hashlib.sha256(f"{base}:{name}:{branch}".encode()).hexdigest()
    return int(digest[:8], 16)


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def put_commit(hub_cache: Path, repo: str, branch: str, files: dict[str, bytes]) -> str:
    """Write one commit of ``repo`` into the cache as huggingface_hub does; return its id."""
    storage = hub_cache / ("models--" + repo.replace("/", "--"))
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    listing = "".join(f"{name} {_git_blob_sha1(data)}\n" for name, data in sorted(files.items()))
    commit = hashlib.sha1(f"{repo}\n{branch}\n{listing}".encode()).hexdigest()
    snap = storage / "snapshots" / commit
    if snap.exists():
        shutil.rmtree(snap)
    snap.mkdir(parents=True)
    for name, data in sorted(files.items()):
        # the Hub names LFS files (weights) by SHA-256 and git files by their git blob SHA-1
        blob_id = (
            hashlib.sha256(data).hexdigest()
            if name.endswith(".safetensors")
            else _git_blob_sha1(data)
        )
        blob = storage / "blobs" / blob_id
        if not blob.exists():
            tmp = blob.with_suffix(".incomplete")
            tmp.write_bytes(data)
            tmp.replace(blob)
        os.symlink(os.path.join("..", "..", "blobs", blob_id), snap / name)
    (storage / "refs" / branch).write_text(commit)  # no newline, as huggingface_hub writes it
    return commit


def fingerprint(model) -> dict:
    weight = model.state_dict()["gpt_neox.layers.0.attention.query_key_value.weight"].float()
    return {
        "parameter": "gpt_neox.layers.0.attention.query_key_value.weight",
        "sum": float(weight.sum()),
        "first": [float(x) for x in weight.flatten()[:4]],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hf-home", type=Path, required=True, help="HF_HOME to build (hub/ inside)")
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--models", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--branches", nargs="+", default=DEFAULT_BRANCHES)
    ap.add_argument("--vocab-size", type=int, default=1024, help="BPE vocabulary (tokens)")
    ap.add_argument(
        "--tokenizer-sentences", type=int, default=20000, help="Brown sentences to train on"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    hub_cache = args.hf_home / "hub"
    hub_cache.mkdir(parents=True, exist_ok=True)
    tokenizer, n_texts = train_tokenizer(args.data_dir, args.vocab_size, args.tokenizer_sentences)
    print(
        f"tokenizer: byte-level BPE, {len(tokenizer)} tokens, trained on {n_texts} Brown "
        f"sentences ({time.perf_counter() - t0:.1f} s)",
        file=sys.stderr,
    )
    # Pythia pads its embedding matrix past the tokenizer (50,304 rows for 50,277 tokens)
    model_vocab = -(-len(tokenizer) // 128) * 128
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        tok_files = {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}

    manifest: dict = {"hf_home": str(args.hf_home.resolve()), "models": {}}
    for name in args.models:
        entry: dict = {"branches": {}, "shape": SIZES[name], "vocab_size": model_vocab}
        for branch in args.branches:
            seed = _seed(name, branch, args.seed)
            model = neox_model(name, model_vocab, seed)
            with tempfile.TemporaryDirectory() as tmp:
                model.config.save_pretrained(tmp)
                model.generation_config.save_pretrained(tmp)
                state = {k: v.contiguous() for k, v in model.state_dict().items()}
                save_file(state, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
                files = {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}
            files.update(tok_files)
            commit = put_commit(hub_cache, name, branch, files)
            entry["branches"][branch] = {"commit": commit, "seed": seed, **fingerprint(model)}
            n_params = sum(p.numel() for p in model.parameters())
            print(
                f"{name}@{branch}: commit {commit[:12]}, {n_params:,} parameters", file=sys.stderr
            )
        last = args.branches[-1]
        storage = hub_cache / ("models--" + name.replace("/", "--"))
        (storage / "refs" / "main").write_text(entry["branches"][last]["commit"])
        entry["main"] = last
        manifest["models"][name] = entry
    (args.hf_home / "rehearsal_hub.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(
        f"wrote {hub_cache}: {len(args.models)} models x {len(args.branches)} branches (+ main) "
        f"in {time.perf_counter() - t0:.1f} s; manifest {args.hf_home / 'rehearsal_hub.json'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
