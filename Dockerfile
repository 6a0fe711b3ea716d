# model-runner container image (docs/deploy.md).
#
#   docker build -t model-runner .        (or: podman build --format docker -t model-runner .)
#   docker run -p 8080:8080 -p 50051:50051 -v mr-repo:/var/lib/model-runner/repo model-runner
#
# Two stages on one Debian release: "build" has the JDK 17, Gradle and protoc that compile the bridge's
# host library and the sample models; the image keeps only a JRE 17, Python 3.11 and their results.
# Both stages put the source tree at the same path (/opt/model-runner) and install it editable, because
# the runtime finds protos/ and the built samples relative to that tree, and the samples' build cache
# is keyed on those paths: the image serves the samples without rebuilding anything.
#
# Configured by environment only (MODEL_RUNNER_*, docs/configuration.md); arguments after the image
# name go to `model-runner serve` (bundles, JARs with --class, flags).

ARG DEBIAN_IMAGE=debian:bookworm-slim

# --------------------------------------------------------------------------------------------- build
FROM ${DEBIAN_IMAGE} AS build

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        openjdk-17-jdk-headless gradle protobuf-compiler libprotobuf-java \
        python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/model-runner
ENV PATH=/opt/model-runner/.venv/bin:$PATH \
    MODEL_RUNNER_CACHE_DIR=/opt/model-runner/cache \
    MODEL_RUNNER_SOURCE_ROOT=/opt/model-runner

COPY pyproject.toml build.gradle settings.gradle ./
COPY bridge bridge
COPY runner runner
COPY protos protos
COPY java-samples java-samples

# python-weka-wrapper3 carries weka.jar, which the weka sample is built against and ships.
RUN python3 -m venv .venv \
    && pip install --no-cache-dir -q -e . 'python-weka-wrapper3>=0.3'

# The host library (javac, into MODEL_RUNNER_CACHE_DIR; built in a private 0700 folder, so opened to the
# image's user) and the sample bundles (Gradle, offline, into build/samples). Then drop Gradle's working
# files: only the bundles and the build hash are used.
RUN python -c "from bridge.build import host_classes; print(host_classes('/usr/bin/javac'))" \
    && chmod -R a+rX cache \
    && python -m runner.samples --quiet \
    && rm -rf java-samples/*/build .gradle /root/.gradle \
    && find . -name __pycache__ -prune -exec rm -rf {} +

# ------------------------------------------------------------------------------------------- runtime
FROM ${DEBIAN_IMAGE}

# tini: PID 1 that forwards SIGTERM to `serve` and reaps orphans. libprotobuf-java: the same jar the
# samples were built against (the samples' build hash names it). python3-venv: Python bundles with their
# own requirements get a virtual environment (docs/bundle.md).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        openjdk-17-jre-headless python3 python3-venv libprotobuf-java tini ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A fixed non-root uid (Kubernetes' runAsNonRoot checks it is not 0), group 0 so that a platform that
# runs the image under another uid of group 0 (OpenShift) can still write where the user can.
RUN useradd --system --uid 10001 --gid 0 --home-dir /var/lib/model-runner --create-home \
        --shell /usr/sbin/nologin model-runner \
    && mkdir -p /var/lib/model-runner/repo

COPY --from=build /opt/model-runner /opt/model-runner
# build/ holds the samples' lock file (runner.samples), written at the first start on an empty repository.
RUN chown -R 10001:0 /var/lib/model-runner /opt/model-runner/build \
    && chmod -R g+rwX /var/lib/model-runner /opt/model-runner/build

ENV PATH=/opt/model-runner/.venv/bin:$PATH \
    MODEL_RUNNER_CACHE_DIR=/opt/model-runner/cache \
    MODEL_RUNNER_SOURCE_ROOT=/opt/model-runner \
    MODEL_RUNNER_REPO=/var/lib/model-runner/repo \
    MODEL_RUNNER_HTTP_HOST=0.0.0.0 \
    MODEL_RUNNER_HTTP_PORT=8080 \
    MODEL_RUNNER_GRPC_PORT=50051 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 10001:0
WORKDIR /var/lib/model-runner
# The repository: a named volume here, a ReadWriteMany claim shared by every replica on Kubernetes.
VOLUME ["/var/lib/model-runner/repo"]
EXPOSE 8080 50051

# Liveness of the HTTP side; Kubernetes ignores HEALTHCHECK and uses the probes in deploy/k8s instead.
# start-period: the first start fills an empty repository and starts one JVM per serving process.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MODEL_RUNNER_HTTP_PORT', '8080') + '/healthz', timeout=2)"]

ENTRYPOINT ["tini", "--", "model-runner", "serve"]
CMD []
