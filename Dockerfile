FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY feature-service ./feature-service
RUN pip install --no-cache-dir .
EXPOSE 4500
CMD ["feature-service", "serve"]
