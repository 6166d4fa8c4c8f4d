# Rubric Studio web app and worker image.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/rubric-studio
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY scripts/docker-entrypoint.sh ./scripts/docker-entrypoint.sh
RUN pip install . && useradd --system --uid 1000 studio && mkdir -p /data && chown studio /data
USER studio
ENV RS_DATA_DIR=/data
EXPOSE 8000
ENTRYPOINT ["./scripts/docker-entrypoint.sh"]
CMD ["web"]
