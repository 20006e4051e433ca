# realtalk serve in a container: docs/deploy.md explains it; tests/test_deploy.py checks it.
#
#   docker build -t realtalk .
#   docker run --rm -p 8080:8080 -e OPENAI_API_KEY -e REALTALK_SERVE_TOKEN realtalk
#
# No PortAudio: serving never opens an audio device, and realtalk imports sounddevice
# (which loads libportaudio2) only when a command plays or records on this machine.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# realtalk with the serve extra, and the tool plugins the agents use (here the repository's
# clock plugin; add your own plugin directories or PyPI names to the same line).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY plugins/realtalk-clock ./plugins/realtalk-clock
RUN pip install ".[serve]" ./plugins/realtalk-clock

# The agents (and their scenarios), read-only for the server's user.
WORKDIR /app
COPY agents ./agents
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin realtalk
USER 10001

# Secrets come from the environment at run time, never from the image:
# OPENAI_API_KEY (or AZURE_OPENAI_API_KEY), REALTALK_SERVE_TOKEN or REALTALK_SERVE_TOKENS,
# REALTALK_SERVE_TOKEN_SECRET and REALTALK_SERVE_MINT_KEY, REALTALK_TWILIO_AUTH_TOKEN.
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
# SIGTERM drains: /readyz turns 503, new sessions are refused, running ones get --drain-s
# seconds to finish (docker stop -t must give it that long: docs/deploy.md).
STOPSIGNAL SIGTERM
CMD ["realtalk", "serve", "/app/agents", "--host", "0.0.0.0", "--port", "8080", "--log-format", "json"]
