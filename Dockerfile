# Image for the Clarity daemon (`clarity serve`), used by the root compose.yaml for people who run
# Claude Code on the host and want Clarity and Qdrant as containers (see scripts/start-dev.sh).
#
# The user is "clarity" with home /home/clarity, so Clarity's storage root
# (~/.claude/alunai-clarity) is /home/clarity/.claude/alunai-clarity, which is exactly where
# compose.yaml mounts the clarity-data volume (checked by tests/env/test_env_files.py).
#
# The install mirrors ./scripts/setup.sh: torch first (pinned, CPU build), then every other
# package exactly as uv.lock says (`uv sync --frozen`), the project itself editable with its dev
# extras (nothing downloads a model at run time: the embedding model is a locked package).
# Editable, so compose.yaml can mount ./clarity over /app/clarity for live code.

FROM python:3.12-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 1000 clarity \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/clarity --shell /bin/bash clarity \
    && mkdir -p /home/clarity/.claude/alunai-clarity \
    && chown -R clarity:clarity /home/clarity

WORKDIR /app

# Same torch and uv pins as ./scripts/setup.sh; override with --build-arg if needed.
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG UV_VERSION=0.13.9
RUN pip install "${TORCH_SPEC}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
    && pip install "uv==${UV_VERSION}"

COPY pyproject.toml uv.lock README.md ./
COPY clarity ./clarity
# Into the image's own Python (/usr/local); uv.lock leaves torch out and --inexact keeps it.
RUN UV_PROJECT_ENVIRONMENT=/usr/local uv sync --frozen --inexact --no-cache --extra dev
# The model's ONNX export, made once here (into /usr/local/share/clarity/onnx) so the daemon is
# ready in under 2 s instead of loading torch (scripts/setup.sh does the same).
RUN python -m clarity.embedding.onnx_export

USER clarity
EXPOSE 8000

# 0.0.0.0 inside the container is required for the published port; the daemon then insists on
# CLARITY_TOKEN, and compose.yaml publishes the port on 127.0.0.1 only.
CMD ["clarity", "serve", "--host", "0.0.0.0", "--port", "8000"]
