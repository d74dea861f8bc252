# agent-api. Build from the repository root:
#   docker build -t hive/agent-api:latest .
# BASE_IMAGE must be a Debian-like image with python3 (>= 3.11) and python3-venv.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent_platform ./agent_platform
COPY orchestrators ./orchestrators
COPY clients ./clients
RUN python3 -m venv /opt/agent-api \
 && /opt/agent-api/bin/pip install --no-compile . \
 && find /opt/agent-api -name '__pycache__' -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
# The service runs as this user. It reaches the Docker socket through the socket's group,
# added at run time (compose: group_add with the host's docker GID), never as root.
ARG APP_UID=10001
RUN useradd --system --uid "${APP_UID}" --no-create-home --shell /usr/sbin/nologin agent-api
COPY --from=build /opt/agent-api /opt/agent-api
ENV PATH=/opt/agent-api/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AGENT_API_HOST=0.0.0.0 \
    AGENT_API_PORT=8000
WORKDIR /tmp
USER ${APP_UID}
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# uvicorn is PID 1 and handles SIGTERM itself: open requests get 5 s, then it exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["agent-platform", "serve"]
