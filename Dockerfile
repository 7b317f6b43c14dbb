# syncworker: one image for the worker, beat, Flower and the one-shot migration.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN useradd --system --uid 10001 --home /app syncworker
COPY pyproject.toml README.md alembic.ini ./
COPY syncworker ./syncworker
COPY migrations ./migrations
# Flower reads flowerconfig.py from its working directory: auth, read-only, no persistence.
COPY ops/flower/flowerconfig.py ./flowerconfig.py
RUN pip install --no-compile . && pip check
USER syncworker
CMD ["syncworker", "worker"]
