# The Stanch operator image. Build from the repository root:
#   docker build -t stanch:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ ./operator/
RUN pip install . && rm -rf /src

# A numeric user, so the kubelet can verify runAsNonRoot without resolving names.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin stanch
USER 10001:10001
WORKDIR /

EXPOSE 8080 8081
ENTRYPOINT ["stanch"]
CMD ["run", "--all-namespaces"]
