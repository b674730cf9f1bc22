FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY feature-service ./feature-service
COPY ws-gateway/migrations ./ws-gateway/migrations
RUN pip install --no-cache-dir .
ENV FEATURE_SERVICE_MIGRATIONS_DIR=/app/ws-gateway/migrations
EXPOSE 4500
CMD ["feature-service", "serve"]
