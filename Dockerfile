# simsearch: web app (gunicorn) and ingest worker in one image.
# UNTESTED: there is no Docker engine where this was written.
#   docker compose -f docker/compose.yml up --build
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    SIMSEARCH_HOME=/data

# libgomp1: OpenMP for faiss-cpu; curl: the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY simsearch ./simsearch
RUN pip install .

RUN useradd --create-home --uid 1000 simsearch \
    && mkdir -p /data \
    && chown simsearch:simsearch /data
USER simsearch
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD curl -fsS http://127.0.0.1:8000/api/health || exit 1

# Two worker processes; each loads models and indexes once, on first use. --timeout covers the
# first search of a large collection (opening its index).
CMD ["gunicorn", "-w", "2", "-b", "0.0.0.0:8000", "--timeout", "300", "simsearch.web.wsgi:app"]
