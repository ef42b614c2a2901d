#!/usr/bin/env bash
# Build every image docker-compose.yml uses, with or without an image registry:
#
#   bash deploy/images.sh                     # then: docker-compose --env-file deploy/images.env up
#
# 1. Base images. CHORUS_BASE_IMAGE (Python), CHORUS_REDIS_IMAGE and CHORUS_POSTGRES_IMAGE when set, else
#    python:3.11-slim, redis:7-alpine and postgres:15-alpine when present or pullable; else images made here once
#    from Debian bookworm with mmdebstrap and `docker import` (chorus-base/python:3.11-bookworm,
#    chorus-base/redis:7-bookworm, chorus-base/postgres:15-bookworm), kept for the next run.
# 2. The Python dependencies (the project's, and the `train` extra for the trainer): CHORUS_PIP_SOURCE=wheels
#    (default) downloads them as wheels on this host into deploy/offline/wheels (once per requirement set) and the
#    build installs them with no network at all;
#    CHORUS_PIP_SOURCE=index installs from the package index inside the build, trusting this host's extra CA
#    certificates (/usr/local/share/ca-certificates/*.crt, copied to deploy/offline/ca) as a TLS proxy needs.
# 3. The service images chorus-{trainer,similarity,rating,gateway}:${CHORUS_IMAGE_TAG:-latest}, with Docker's
#    layer cache: an unchanged tree rebuilds nothing, a code change only the last layers.
# 4. deploy/images.env: the image variables docker-compose.yml reads, for `docker-compose --env-file`.
# 5. With CHORUS_SPARK=1, also the image of the compose file's `spark` profile, chorus-spark:$TAG: the Python base
#    image with a Java 17 runtime added (chorus-base/python-java:3.11, made here with apt-get from the Debian
#    mirror, unless CHORUS_SPARK_BASE_IMAGE names one), the `train` and `spark` extras (pyspark) and Chorus.
#
# Idempotent; a second run with nothing changed takes seconds. Needs docker (and mmdebstrap when no base image
# is available).
set -euo pipefail
cd "$(dirname "$0")/.."

export DOCKER_BUILDKIT=0 # the classic builder: Debian's docker.io ships no buildx
TAG=${CHORUS_IMAGE_TAG:-latest}
SPARK=${CHORUS_SPARK:-}
LOCAL_PYTHON_JAVA=chorus-base/python-java:3.11
PIP_SOURCE=${CHORUS_PIP_SOURCE:-wheels}
LOCAL_PYTHON=chorus-base/python:3.11-bookworm
LOCAL_REDIS=chorus-base/redis:7-bookworm
LOCAL_POSTGRES=chorus-base/postgres:15-bookworm
OFFLINE=deploy/offline

log() { echo "images: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}
present() { docker image inspect "$1" >/dev/null 2>&1; }

case "$PIP_SOURCE" in wheels | index) ;; *) die "CHORUS_PIP_SOURCE must be wheels or index, not '$PIP_SOURCE'" ;; esac
docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd, or run as a user in the docker group)"

# make_base NAME PACKAGES [docker import --change ...]: a Debian bookworm minbase image with PACKAGES; the
# array HOOKS holds extra mmdebstrap options (--customize-hook=...) for the image being made.
HOOKS=()
make_base() {
  local name=$1 packages=$2
  shift 2
  command -v mmdebstrap >/dev/null || die "no $name and no registry: install mmdebstrap to make it (apt-get install mmdebstrap)"
  log "making $name from Debian bookworm (mmdebstrap --variant=minbase, $packages)"
  local started=$SECONDS
  mmdebstrap --quiet --variant=minbase --include="$packages" "${HOOKS[@]}" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm - |
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change "LABEL org.opencontainers.image.description=\"Debian bookworm minbase with $packages (deploy/images.sh)\"" \
      "$@" - "$name" >/dev/null
  log "made $name in $((SECONDS - started)) s"
}

# choose VARIABLE DEFAULT LOCAL PACKAGES [changes...]: the image to use for one base, made when need be.
choose() {
  local variable=$1 default=$2 local_name=$3 packages=$4
  shift 4
  local wanted=${!variable:-}
  if [ -n "$wanted" ]; then
    present "$wanted" || docker pull -q "$wanted" >/dev/null || die "$variable=$wanted is neither here nor pullable"
    echo "$wanted"
  elif present "$default"; then
    echo "$default"
  elif present "$local_name"; then
    echo "$local_name"
  elif docker pull -q "$default" >/dev/null 2>&1; then
    echo "$default"
  else
    log "$default is not here and no registry answers"
    make_base "$local_name" "$packages" "$@"
    echo "$local_name"
  fi
}

base=$(choose CHORUS_BASE_IMAGE python:3.11-slim "$LOCAL_PYTHON" python3,python3-venv,python-is-python3,ca-certificates,passwd,libgomp1 \
  --change 'CMD ["python3"]')
redis=$(choose CHORUS_REDIS_IMAGE redis:7-alpine "$LOCAL_REDIS" redis-server \
  --change 'USER redis' --change 'WORKDIR /var/lib/redis' --change 'EXPOSE 6379' \
  --change 'CMD ["redis-server", "--protected-mode", "no"]')
# The event store's server for the compose file: Debian's postgresql-15 with an entry point that reads the official
# image's variables (deploy/postgres-entrypoint.sh).
HOOKS=(
  --customize-hook="copy-in deploy/postgres-entrypoint.sh /usr/local/bin"
  --customize-hook='chroot "$1" install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data'
)
postgres=$(choose CHORUS_POSTGRES_IMAGE postgres:15-alpine "$LOCAL_POSTGRES" postgresql-15 \
  --change 'USER postgres' --change 'ENV PGDATA=/var/lib/postgresql/data' --change 'EXPOSE 5432' \
  --change 'CMD ["/usr/local/bin/postgres-entrypoint.sh"]')
HOOKS=()
log "base images: $base, $redis, $postgres"

# The dependencies as wheels, downloaded again only when the requirements or the base image change. pip runs in
# a container of the base image, because only the target interpreter evaluates markers such as
# `python_full_version < "3.11.3"` right (pip download --python-version does not); it trusts this host's CA bundle
# (which holds the extra certificates a TLS proxy needs). Every dependency comes as a wheel except pyspark, which
# PyPI publishes only as a source archive (pure Python: the image build makes its wheel offline).
build_args=(--build-arg "BASE_IMAGE=$base" --build-arg "PIP_SOURCE=$PIP_SOURCE")
network=()
if [ "$PIP_SOURCE" = wheels ]; then
  rm -rf "$OFFLINE/ca" # what the build context holds depends on the mode only, for Docker's cache
  stamp=$( (
    docker run --rm --network none -v "$PWD/pyproject.toml:/src/pyproject.toml:ro" "$base" python3 -c \
      'import tomllib; p = tomllib.load(open("/src/pyproject.toml", "rb"))["project"]; print(p["dependencies"], p["optional-dependencies"]["train"])'
    [ -z "$SPARK" ] || echo "with the spark extra"
    docker image inspect -f '{{.Id}}' "$base"
    uname -m
  ) | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$OFFLINE/wheels/.stamp" 2>/dev/null)" != "$stamp" ]; then
    log "downloading the dependencies as wheels into $OFFLINE/wheels (pip in $base)"
    started=$SECONDS
    rm -rf "$OFFLINE/wheels"
    mkdir -p "$OFFLINE/wheels"
    ca=()
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
      ca=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/host-ca.crt:ro -e PIP_CERT=/etc/ssl/certs/host-ca.crt)
    fi
    docker run --rm --user "$(id -u):$(id -g)" -e HOME=/tmp -e PIP_DISABLE_PIP_VERSION_CHECK=1 -e PIP_NO_CACHE_DIR=1 -e SPARK="$SPARK" \
      "${ca[@]}" -v "$PWD/pyproject.toml:/src/pyproject.toml:ro" -v "$PWD/$OFFLINE/wheels:/wheels" "$base" sh -c '
        set -e
        python - >/tmp/requirements.txt <<PY
import os, tomllib
project = tomllib.load(open("/src/pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"]))
print("\n".join(r for r in project["optional-dependencies"]["train"] if not r.startswith(project["name"])))
if os.environ.get("SPARK"):
    print("\n".join(r for r in project["optional-dependencies"]["spark"] if not r.startswith(project["name"])))
print("setuptools>=70.1")
PY
        python -m venv /tmp/venv
        /tmp/venv/bin/pip download -q --only-binary=:all: --no-binary=pyspark --dest /wheels -r /tmp/requirements.txt'
    echo "$stamp" >"$OFFLINE/wheels/.stamp"
    log "downloaded $(find "$OFFLINE/wheels" -name '*.whl' | wc -l) wheels in $((SECONDS - started)) s"
  fi
  network=(--network none) # proves the build needs no network
else
  rm -rf "$OFFLINE/ca"
  if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    mkdir -p "$OFFLINE/ca"
    cp /usr/local/share/ca-certificates/*.crt "$OFFLINE/ca/"
  fi
fi

buildlog=$(mktemp)
trap 'rm -f "$buildlog"' EXIT
targets=(trainer similarity rating gateway)
spark_base=""
if [ -n "$SPARK" ]; then
  # Spark runs on Java, which pip cannot install: the base image with Java 17 added (the same Python, so the
  # virtual environment built on the base runs there unchanged); Docker's cache makes a second run instant. The
  # JRE's install script links its manual page, whose folder a minimal base image leaves out.
  spark_base=${CHORUS_SPARK_BASE_IMAGE:-$LOCAL_PYTHON_JAVA}
  if [ -z "${CHORUS_SPARK_BASE_IMAGE:-}" ]; then
    started=$SECONDS
    printf '%s\n' "FROM $base" "USER root" \
      "RUN mkdir -p /usr/share/man/man1 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null && rm -rf /var/lib/apt/lists/*" |
      docker build -q -t "$spark_base" - >"$buildlog" 2>&1 || {
      tail -n 40 "$buildlog" >&2
      die "adding Java 17 to $base failed (apt-get needs a Debian mirror; or set CHORUS_SPARK_BASE_IMAGE)"
    }
    log "made $spark_base ($base with Java 17) in $((SECONDS - started)) s"
  else
    present "$spark_base" || docker pull -q "$spark_base" >/dev/null || die "CHORUS_SPARK_BASE_IMAGE=$spark_base is neither here nor pullable"
  fi
  build_args+=(--build-arg "SPARK_BASE_IMAGE=$spark_base")
  targets+=(spark)
fi
for target in "${targets[@]}"; do
  started=$SECONDS
  if ! docker build --force-rm -f deploy/Dockerfile --target "$target" "${build_args[@]}" "${network[@]}" \
    --label org.chorus.image="$target" -t "chorus-$target:$TAG" . >"$buildlog" 2>&1; then
    tail -n 40 "$buildlog" >&2
    die "building chorus-$target:$TAG failed"
  fi
  log "built chorus-$target:$TAG in $((SECONDS - started)) s"
done
# Rebuilds leave the previous service images untagged; drop those (only ours, by label).
docker image prune -f --filter label=org.chorus.image >/dev/null

cat >deploy/images.env <<EOF
# Written by deploy/images.sh: docker-compose --env-file deploy/images.env up
CHORUS_BASE_IMAGE=$base
CHORUS_REDIS_IMAGE=$redis
CHORUS_POSTGRES_IMAGE=$postgres
CHORUS_IMAGE_TAG=$TAG
EOF
[ -z "$spark_base" ] || echo "CHORUS_SPARK_BASE_IMAGE=$spark_base" >>deploy/images.env
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' |
  grep -E "^(chorus-(trainer|similarity|rating|gateway|spark):$TAG|${base}|${redis}|${postgres}) " | sed 's/^/images:   /' >&2
