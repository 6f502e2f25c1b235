# One image for every Python service of the stack: tiled, the queue server (manager + HTTP server),
# the nxsci reconstruction service and Dask scheduler/workers (see docker-compose.yml).
FROM python:3.11-slim-bookworm

# PyMca5 and fisx build from source (C/C++)
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential git \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/nxsci
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# CPU torch, pinned as in pyproject.toml (for GPUs, use a CUDA wheel of the same version)
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY nxsci ./nxsci
COPY recon ./recon
COPY devices ./devices
COPY plans ./plans
COPY services ./services
RUN pip install . "bluesky-httpserver>=0.0.14"
COPY deploy ./deploy

RUN useradd --create-home nxsci && mkdir -p /data && chown nxsci /data
USER nxsci
WORKDIR /data
EXPOSE 8000
CMD ["nxsci", "serve", "--host", "0.0.0.0", "--port", "8000"]
