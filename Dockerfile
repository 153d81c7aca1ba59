# syntax=docker/dockerfile:1
# Scriptworks API image. Build:  docker build -t scriptworks .
# Run it with real authentication: the image listens on 0.0.0.0, and the server refuses to do
# that in development mode (no AUTH_TOKENS, no JWT). JWTs from your identity provider:
#   docker run -p 8000:8000 \
#     -e DATABASE_URL=postgresql+asyncpg://user:pass@db/scriptworks \
#     -e AUTH_JWT_JWKS=https://id.example.com/.well-known/jwks.json \
#     -e AUTH_JWT_ISSUER=https://id.example.com/ -e AUTH_JWT_AUDIENCE=scriptworks \
#     -e STREAM_TICKET_SECRET="$(openssl rand -hex 32)" \
#     scriptworks
# or static tokens, each bound to its tenants (see docs/authentication.md):
#     -e AUTH_TOKENS='tok-1=alice:admin@acme,tok-2=robot-7:runner@acme|globex'
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
