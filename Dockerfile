# One image for every ResolutionFlow process: `rflow api` (default), `rflow worker`, `rflow migrate`.
# Built and wired up by docker-compose.yml; see the header there.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    API_HOST=0.0.0.0 \
    API_PORT=8000

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The code, installed in place: migrations and alembic.ini are read from /app at run time.
COPY . .
RUN pip install --no-deps -e . \
    && useradd --create-home --uid 10001 rflow \
    && chown -R rflow /app
USER rflow

EXPOSE 8000
# The API's health check (GET /healthz) is declared in docker-compose.yml: the worker has no HTTP.
CMD ["rflow", "api"]
