# clipforge's cluster image: every Ray node (cluster launcher, KubeRay) runs it; `clipforge submit --installed`
# assumes it. Python 3.11 (the project's tested minor), Ray and every dependency pinned by constraints.txt.
#   docker build -t ghcr.io/your-org/clipforge:0.1.0 . && docker push ghcr.io/your-org/clipforge:0.1.0
# The PyPI torch wheel bundles CUDA, so one image serves CPU and GPU nodes (GPU nodes need the NVIDIA runtime).
FROM python:3.11-slim-bookworm

# RAY_DATA_USE_DATASOURCE_V2=0: Ray Data 2.60's parquet footer actors are not restarted after a node loss
# (ray-project/ray#65273), which fails a build; the v1 reader retries its tasks. See infra/submit.py.
ENV PYTHONUNBUFFERED=1 \
    RAY_DATA_USE_DATASOURCE_V2=0 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    NO_ALBUMENTATIONS_UPDATE=1 \
    RAY_USAGE_STATS_ENABLED=0

# The cluster launcher runs commands over ssh/rsync as a non-root-capable user; KubeRay needs only a shell.
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       openssh-client rsync sudo tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/clipforge
# Dependencies first (cached while only the code changes): the pins, then the Debian packages clipforge needs.
COPY constraints.txt pyproject.toml README.md ./
COPY scripts/sysdeps.sh scripts/sysdeps.sh
RUN bash scripts/sysdeps.sh
RUN python -m pip install -q "pip==26.3" \
    && mkdir -p pipeline curation training evaluation infra \
    && python -m pip install -q -c constraints.txt -e . \
    && python -m pip uninstall -q -y clipforge

# The code. Editable install: configs/models/ (open_clip JSON configs) are found next to the packages.
COPY . .
RUN python -m pip install -q -c constraints.txt --no-deps -e . && clipforge --version

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["bash"]
