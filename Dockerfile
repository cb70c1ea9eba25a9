# One image for every process of the platform: `serve` (default), `worker`, `scheduler`, and
# the one-off commands (`db migrate`, `backup`, `restore`, `audit verify`).
#
#   docker build -t botplatform .
#   docker run --env-file .env -p 3000:3000 botplatform            # the app
#   docker run --env-file .env botplatform worker                  # job workers
#   docker run --env-file .env botplatform scheduler               # cron scheduler
#
# Checked in CI without Docker (none is available there): hadolint lints this file, and
# tests/deploy/test_dockerfile.py runs the build stage's own commands in a fresh folder and
# virtual environment, then starts the image's command and its HEALTHCHECK (docs/operations.md).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: dependencies, the package, and the browser assets from the npm registry ----------
FROM ${PYTHON_IMAGE} AS build

# npm fetches htmx, Swagger UI and uPlot at build time (`botplatform assets`, digest-checked).
RUN apt-get update \
    && apt-get install -y --no-install-recommends npm \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir uv==0.13.9

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src ./src
# The package itself, not editable: the runtime stage needs only the environment.
RUN uv sync --frozen --no-dev --no-editable \
    && /app/.venv/bin/botplatform assets

# --- runtime: the environment, a non-root user, nothing to build with ------------------------
FROM ${PYTHON_IMAGE} AS runtime

# pg_dump/pg_restore for `botplatform backup|restore` on PostgreSQL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 botplatform \
    && useradd --system --uid 10001 --gid botplatform --home-dir /data --no-create-home botplatform \
    && mkdir -p /data/media /data/backups /data/logs /data/tmp \
    && chown -R botplatform:botplatform /data

# (Named volumes mounted on /data/media and /data/backups start with this owner.)
COPY --from=build /app/.venv /app/.venv

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data \
    LOG_DIR=/data/logs

WORKDIR /data
USER 10001:10001
EXPOSE 3000
VOLUME ["/data"]

# The app's liveness; worker and scheduler containers set their own (docker-compose.yml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '3000'), timeout=4)"]

ENTRYPOINT ["botplatform"]
CMD ["serve"]
