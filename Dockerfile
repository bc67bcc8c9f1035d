# The gateway as a container: `docker build -t caldav-gateway .`
# It starts from the environment alone; a configuration file is optional (GATEWAY_CONFIG):
#   docker run -p 8080:8080 -e GATEWAY_SECRET_KEY=... -e GATEWAY_ADMIN_TOKEN=... \
#       -e GATEWAY_BASE_URL=https://calendar.example.com -v gateway-data:/data caldav-gateway
#   with a file: add -v $PWD/config:/config:ro -e GATEWAY_CONFIG=/config/gateway.toml
# The demo (emulator + gateway, nothing else needed): docker run -p 8080:8080 caldav-gateway demo
# The gateway with PostgreSQL (the image has the asyncpg driver, the postgres extra): compose.yaml. Not built or run in CI (no container runtime there):
# tests/ops/test_container.py runs this file's command with its environment as a process instead.
FROM python:3.11-slim

# GATEWAY_HOST=0.0.0.0: inside a container the published port reaches the process on eth0, not
# loopback. The URL clients are given comes from GATEWAY_BASE_URL, else from each request.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080 \
    GATEWAY_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY config ./config
RUN pip install --no-cache-dir ".[postgres]" \
    && useradd --system --home-dir /data --create-home gateway

USER gateway
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["caldav-gateway"]
CMD ["serve"]
