# simsearch: the web app (gunicorn), the ingest worker and the CLI in one image.
#   docker compose up --build        (compose.yaml beside this file; see the README's "Deployment")
#   docker build -t simsearch .      (the build context is what .dockerignore lets through: a few MB)
# Not built where it was written (no Docker engine there): `docker compose config` validates the
# compose file in CI, tests/test_deploy.py checks this file's COPY sources and the build context,
# tests/test_lockfile.py that requirements.lock pins every dependency of pyproject.toml in its range.
# Linux x86-64 only: requirements.lock is resolved for CPython 3.11 on manylinux x86-64, with
# TensorFlow's CPU-only wheel (`tensorflow-cpu`: 1.27 GB installed against 1.87 GB for `tensorflow`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    SIMSEARCH_HOME=/data \
    SIMSEARCH_WEIGHTS_DIR=/weights \
    KERAS_HOME=/weights/keras

# libgomp1: OpenMP for faiss-cpu; curl: the web app's health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first (a layer that survives code changes): exactly the versions and files of
# requirements.lock (every one pinned, every file checked against its SHA-256; docs/deployment.md
# says how to refresh it). Then simsearch itself without dependencies, built with the setuptools
# and wheel the lock installed (no unpinned build environment fetched).
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY simsearch ./simsearch
RUN pip install --no-deps --no-build-isolation . && simsearch --version

# Named volumes start as copies of these folders: owned by the user the processes run as.
RUN useradd --create-home --uid 1000 simsearch \
    && mkdir -p /data /weights/keras /photos \
    && chown -R simsearch:simsearch /data /weights
USER simsearch
VOLUME ["/data", "/weights"]
EXPOSE 8000

# /api/health answers within SIMSEARCH_HEALTH_TIMEOUT (3 s) whatever the database does
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8000/api/health || exit 1

# gunicorn_conf refuses to listen on 0.0.0.0 without SIMSEARCH_API_KEYS (one error line, exit 2).
# Two worker processes of 16 threads (gthread), with deadlines for slow clients (docs/operations.md);
# each process loads models and indexes once, on first use.
CMD ["gunicorn", "-c", "python:simsearch.web.gunicorn_conf", "-b", "0.0.0.0:8000", "simsearch.web.wsgi:app"]
