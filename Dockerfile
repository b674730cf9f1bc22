# The service image: `feature-service serve` (the same command the tests run), as a non-root user.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY feature-service ./feature-service
COPY ws-gateway/migrations ./ws-gateway/migrations
RUN pip install . \
    && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home feature \
    && mkdir -p /data/feature-service /app/config/versions \
    && chown -R feature:feature /data/feature-service /app/config
ENV FEATURE_SERVICE_MIGRATIONS_DIR=/app/ws-gateway/migrations \
    FEATURE_SERVICE_DATA_DIR=/data/feature-service \
    FEATURE_SERVICE_HOST=0.0.0.0 \
    FEATURE_SERVICE_LOG_FORMAT=json
USER feature
VOLUME ["/data/feature-service"]
EXPOSE 4500
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=12 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4500/health', timeout=3)"]
CMD ["feature-service", "serve"]
