# syntax=docker/dockerfile:1
# soctriage: the API (`serve`) by default; the same image runs `worker` and any other command.
# Build: docker build -t soctriage .   Scale-out shape with PostgreSQL and Chroma: deploy/compose.yaml.

# --- build: install soctriage and its PostgreSQL extra into a venv that the runtime stage copies whole ---
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/soctriage
COPY pyproject.toml README.md ./
COPY agents agents
COPY tools tools
COPY prompts prompts
COPY service service
COPY evals evals
RUN /opt/soctriage/bin/pip install --no-cache-dir ".[postgres]"

# --- runtime: no compilers, no pip cache, no source tree; runs as an unprivileged user ---
FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 soctriage \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /var/lib/soctriage soctriage
COPY --from=build /opt/soctriage /opt/soctriage
ENV PATH=/opt/soctriage/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SOCTRIAGE_HOME=/var/lib/soctriage \
    SOCTRIAGE_LOG_FORMAT=json
USER 10001:10001
WORKDIR /var/lib/soctriage
VOLUME ["/var/lib/soctriage"]
EXPOSE 8000
# /healthz answers 200 while the database answers; a worker container overrides this (see deploy/compose.yaml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["soctriage"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
