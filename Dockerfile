# ddb-failover: one image, two services.
#   responder (default):  docker run ... ddb-failover                  -> ddb-responder serve
#   exporter:             docker run ... ddb-failover ddb-exporter
# Both read the config from $DDB_FAILOVER_CONFIG (/etc/ddb-failover/ddb-failover.yml).
# The `sandbox` stage adds the local regions and DigitalOcean API for `docker compose --profile demo`.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ddb_failover/ ddb_failover/
COPY exporter/ exporter/
COPY responder/ responder/
COPY sandbox/ sandbox/
# A wheel, so neither the source tree nor the build tools reach the runtime image.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DDB_FAILOVER_CONFIG=/etc/ddb-failover/ddb-failover.yml
# A fixed uid/gid so volume and secret-file permissions can be set on the host.
RUN groupadd --system --gid 10001 ddb \
    && useradd --system --uid 10001 --gid ddb --no-create-home \
       --home-dir /var/lib/ddb-failover --shell /usr/sbin/nologin ddb \
    && mkdir -p /etc/ddb-failover /var/lib/ddb-failover \
    && chown ddb:ddb /var/lib/ddb-failover

FROM base AS sandbox
COPY --from=build /wheels/ /wheels/
# The sandbox extra: moto's servers and the OpenAPI validator (never in the runtime image).
RUN pip install --no-cache-dir "$(ls /wheels/ddb_failover-*.whl)[sandbox]" && rm -rf /wheels
COPY docker/sandbox_service.py /opt/ddb-failover/sandbox_service.py
RUN mkdir -p /sandbox && chown ddb:ddb /sandbox
USER 10001:10001
WORKDIR /sandbox
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "/opt/ddb-failover/sandbox_service.py", "--check"]
ENTRYPOINT ["python", "/opt/ddb-failover/sandbox_service.py"]

FROM base AS runtime
COPY --from=build /wheels/ /wheels/
RUN pip install --no-cache-dir /wheels/ddb_failover-*.whl && rm -rf /wheels
USER 10001:10001
WORKDIR /var/lib/ddb-failover
# 9745: ddb-exporter; 9746: ddb-responder.
EXPOSE 9745 9746
# Slim images have no curl. The exporter's container sets DDB_HEALTHCHECK_URL to its own port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = os.environ.get('DDB_HEALTHCHECK_URL', 'http://127.0.0.1:9746/healthz'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]
CMD ["ddb-responder", "serve"]
