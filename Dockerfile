# Headwater's image: the project, its locked dependencies (bytecode compiled), and Prefect's CLI.
# Used by docker-compose.yml (server, worker, deploy) and the Kubernetes manifests in deploy/kubernetes/.
FROM python:3.11-slim

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PYTHONUNBUFFERED=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    HEADWATER_PROJECT_DIR=/app \
    HEADWATER_DATA_DIR=/data \
    PATH=/app/.venv/bin:$PATH

RUN pip install --no-cache-dir uv
WORKDIR /app

# dependencies first, so a code change does not reinstall them
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project

COPY . .
RUN uv sync --locked --no-dev && mkdir -p /data

# the worker is the default; compose and Kubernetes override the command for the server and the deploy job
CMD ["prefect", "worker", "start", "--pool", "headwater-process", "--type", "process"]
