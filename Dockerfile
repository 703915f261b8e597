# One image for every ResolutionFlow process: `rflow api` (default), `rflow worker`, `rflow migrate`.
# Built and wired up by docker-compose.yml; see the header there.
#
# Reproducible: the base image is pinned by digest (python:3.11-slim-bookworm, Python 3.11.16, as published on
# 2026-08-25; the digest is the multi-platform index listed in docker-library/repo-info,
# repos/python/remote/3.11-slim-bookworm.md) and the dependencies come from requirements.lock (exact versions
# with hashes, `python3 run.py lock`). Only the runtime dependencies: the `local` extra of `rflow dev` and the
# tests (Temporal's dev server, the embedded PostgreSQL, the SMTP sink) stays out.
FROM python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    API_HOST=0.0.0.0 \
    API_PORT=8000

WORKDIR /app

# Dependencies first, from the lock alone, so a code change does not reinstall them. --require-hashes: a file
# that differs from the one locked fails the build.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

# The code, installed in place (migrations and alembic.ini are read from /app at run time). No build isolation:
# the base image's own setuptools builds it, rather than whichever version the index offers that day.
COPY . .
RUN pip install --no-deps --no-build-isolation -e . \
    && useradd --create-home --uid 10001 rflow \
    && chown -R rflow /app
USER rflow

EXPOSE 8000 9464
# Health checks are declared in docker-compose.yml: the API's GET /healthz, the worker's `rflow worker --check`.
CMD ["rflow", "api"]
