#!/usr/bin/env python3
"""Check the rehearsal's offline hub (build_hub.py) the way compute jobs will use it.

Run with ``HF_HOME`` pointing at the built cache and ``HF_HUB_OFFLINE=1`` (it refuses otherwise,
so that it cannot pass by downloading). For every (model, branch) of ``$HF_HOME/rehearsal_hub.json``
and for ``main``:

* ``expertalign.models.load_model(name, revision=branch)`` loads it, and the fingerprinted
  parameter (layer 0's ``attention.query_key_value.weight``) equals what build_hub.py saved for
  that branch and differs from every other branch's (so the revision was honoured);
* the tokenizer tokenizes a sentence with words no training sentence needs to hold (byte-level:
  no unknown tokens) and decodes it back;
* ``expertalign.fetch.prefetch`` (what ``expertalign prefetch NAME --revision BRANCH`` and the
  workflow's ``prefetch`` rule call) finds everything loading needs in the cache;
* a branch that does not exist fails with the project's ModelNotFoundError.

Then it runs the CLI once, ``expertalign prefetch <first model> --revision <second branch>``, as a
subprocess. Exit status 0 only when every check passed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    if os.environ.get("HF_HUB_OFFLINE") != "1" or not os.environ.get("HF_HOME"):
        print("run with HF_HUB_OFFLINE=1 and HF_HOME=<the built cache>", file=sys.stderr)
        return 2
    import torch

    from expertalign.fetch import prefetch
    from expertalign.models import ModelNotFoundError, load_model

    torch.set_num_threads(1)
    manifest = json.loads((Path(os.environ["HF_HOME"]) / "rehearsal_hub.json").read_text())
    failures: list[str] = []
    sentence = "The quokka's xylophone zigzagged past 42 Björk fans."
    for name, entry in manifest["models"].items():
        sums = {b: info["sum"] for b, info in entry["branches"].items()}
        for branch in [*entry["branches"], "main"]:
            want = entry["branches"][entry["main"] if branch == "main" else branch]
            lm = load_model(name, revision=branch, device="cpu", dtype="float32")
            weight = lm.model.state_dict()[want["parameter"]].float()
            got_sum = float(weight.sum())
            got_first = [float(x) for x in weight.flatten()[:4]]
            others = [b for b, s in sums.items() if abs(s - got_sum) < 1e-6]
            ok = got_first == want["first"] and abs(got_sum - want["sum"]) < 1e-4
            ok = ok and others == [entry["main"] if branch == "main" else branch]
            ids = lm.tokenizer(sentence, add_special_tokens=False)["input_ids"]
            round_trip = lm.tokenizer.decode(ids)
            fetched = prefetch([(name, branch)])[0]
            commit = Path(fetched.folder).name
            ok = ok and commit == want["commit"] and round_trip == sentence
            print(
                f"{'ok  ' if ok else 'FAIL'} {name}@{branch}: {type(lm.model).__name__}, "
                f"{want['parameter']} sum {got_sum:+.6f} (saved {want['sum']:+.6f}), "
                f"first {got_first[0]:+.6f}; prefetch -> snapshots/{commit[:12]} "
                f"({', '.join(fetched.weights)}); {len(ids)} tokens, round trip "
                f"{'exact' if round_trip == sentence else repr(round_trip)}"
            )
            if not ok:
                failures.append(f"{name}@{branch}")
        try:
            load_model(name, revision="step999", device="cpu")
            failures.append(f"{name}@step999 loaded")
            print(f"FAIL {name}@step999 loaded although no such branch exists")
        except ModelNotFoundError as err:
            print(f"ok   {name}@step999: ModelNotFoundError: {str(err)[:150]}...")
    name = next(iter(manifest["models"]))
    branch = list(manifest["models"][name]["branches"])[1]
    cmd = [str(ROOT / ".venv/bin/expertalign"), "prefetch", name, "--revision", branch]
    done = subprocess.run(cmd, capture_output=True, text=True)
    print(f"$ expertalign prefetch {name} --revision {branch}  -> exit {done.returncode}")
    print((done.stdout + done.stderr).strip())
    if done.returncode != 0:
        failures.append("expertalign prefetch CLI")
    print("all checks passed" if not failures else f"FAILED: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
