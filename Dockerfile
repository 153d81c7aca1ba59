# syntax=docker/dockerfile:1
# Scriptworks API image. Build:  docker build -t scriptworks .
# Run:  docker run -e DATABASE_URL=postgresql+asyncpg://user:pass@db/scriptworks -p 8000:8000 scriptworks
# The default command applies migrations, then serves; production deployments may run
# `scriptworks database upgrade --no-prompt` as a separate step and set MIGRATE_ON_START=false.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim AS runtime
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOG_FORMAT=json
RUN groupadd --system --gid 10001 scriptworks \
 && useradd --system --uid 10001 --gid scriptworks --home-dir /home/scriptworks --create-home scriptworks
COPY --from=build /opt/venv /opt/venv
USER scriptworks
WORKDIR /home/scriptworks
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
CMD ["sh", "-c", "scriptworks database upgrade --no-prompt && exec scriptworks run --host 0.0.0.0 --port 8000"]
