# The gateway as a container: `docker build -t caldav-gateway .`
#   docker run -p 8080:8080 -e GATEWAY_SECRET_KEY=... -e GATEWAY_ADMIN_TOKEN=... \
#       -v gateway-data:/data -v $PWD/config:/config caldav-gateway
# The demo (emulator + gateway, nothing else needed): docker run -p 8080:8080 caldav-gateway demo --host 0.0.0.0
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY config ./config
RUN pip install --no-cache-dir . \
    && useradd --system --home-dir /data --create-home gateway

USER gateway
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["caldav-gateway"]
CMD ["serve", "--config", "/config/gateway.toml"]
