# Convenience targets; each one is a thin wrapper over run.py (which needs only python3).
#   make dev ARGS="--api-port 8080"   make test ARGS="-k cli -q"
PYTHON ?= python3
ARGS ?=

.PHONY: help setup dev test lint migrate bench up down

help:
	@echo "make dev | test | lint | migrate | bench | setup | up | down   (extra arguments: ARGS=...)"

setup:  ## create .venv and install the project
	$(PYTHON) run.py setup

dev:  ## PostgreSQL, Temporal + Web UI, worker and API in one terminal
	$(PYTHON) run.py dev $(ARGS)

test:  ## the whole test suite
	$(PYTHON) run.py test $(ARGS)

lint:  ## ruff and mypy
	$(PYTHON) run.py lint $(ARGS)

migrate:  ## migrate DATABASE_URL to the newest revision
	$(PYTHON) run.py migrate $(ARGS)

bench:  ## startup benchmark (cold and warm `rflow dev`)
	$(PYTHON) run.py bench startup $(ARGS)

up:  ## the production-like Docker stack (see docker-compose.yml)
	docker compose up --build -d

down:
	docker compose down
