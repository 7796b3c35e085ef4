#!/usr/bin/env bash
# Run the Fractal Animation Server on a local Kind cluster, end to end:
#   1. create the Kind cluster (kind/cluster.yaml) unless it exists,
#   2. build the image with docker and load it into the node (`kind load docker-image`, or
#      `docker save | kind load image-archive` where that fails),
#   3. install Traefik (kind/traefik-values.yaml: NodePorts 30080/30443, mapped to host
#      8080/8443) and metrics-server (for the worker HorizontalPodAutoscaler),
#   4. `helm upgrade --install` the chart with kind/values.yaml and wait for every rollout,
#   5. smoke test through the gateway: sign up, get a token, submit a small animation, poll
#      until it succeeded, download the MP4 through the presigned URL.
# Safe to re-run: every step converges (existing cluster, cached image layers, helm upgrade);
# the smoke test uses a fresh user each time. SKIP_SMOKE_TEST=1 skips step 5.
#
# Needs: docker, kind (v0.33.0+, for the node image pinned in kind/cluster.yaml), kubectl,
# helm (v3.8+ or v4), curl, python3 (to read JSON).
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIND_DIR="${ROOT_DIR}/kind"
CHART_DIR="${ROOT_DIR}/deploy/helm/fractal-server"

CLUSTER_NAME="${CLUSTER_NAME:-fractal}"
NAMESPACE="${NAMESPACE:-fractal}"
RELEASE="${RELEASE:-fractal}"
IMAGE_REPOSITORY="${IMAGE_REPOSITORY:-fractal-server}"
# The version whose templates tests/test_deploy_tools.py renders kind/traefik-values.yaml with.
TRAEFIK_CHART_VERSION="${TRAEFIK_CHART_VERSION:-41.3.0}"
METRICS_SERVER_CHART_VERSION="${METRICS_SERVER_CHART_VERSION:-3.13.0}"
# Host port of Traefik's web entry point: kind/cluster.yaml and ingress.publicPort.
GATEWAY_PORT=8080
# *.localhost resolve to the loopback address locally; the smoke test also pins them with
# `curl --resolve`, so that an old curl or a strict resolver cannot get in the way.
API_HOST="api.localhost"
S3_HOST="s3.localhost"
API_URL="http://${API_HOST}:${GATEWAY_PORT}"
MIN_KIND_VERSION="0.33.0"
ROLLOUT_TIMEOUT="${ROLLOUT_TIMEOUT:-10m}"
SMOKE_TIMEOUT_SECONDS="${SMOKE_TIMEOUT_SECONDS:-300}"

log() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf '\nERROR: %s\n' "$*" >&2; exit 1; }

require_tools() {
  local tool missing=()
  for tool in docker kind kubectl helm curl python3; do
    command -v "${tool}" >/dev/null 2>&1 || missing+=("${tool}")
  done
  if ((${#missing[@]})); then
    die "missing tools: ${missing[*]} (see docs/deployment.md)"
  fi
  docker info >/dev/null 2>&1 || die "docker is not running (docker info failed)"
  local kind_version
  kind_version="$(kind version | sed -n 's/^kind v\([0-9][0-9.]*\).*/\1/p')"
  version_at_least "${kind_version}" "${MIN_KIND_VERSION}" ||
    die "kind ${kind_version:-unknown} is too old: kind/cluster.yaml's node image needs kind v${MIN_KIND_VERSION}+"
}

# version_at_least 0.33.1 0.33.0 -> true (dotted numeric comparison).
version_at_least() {
  [[ -n "$1" ]] && [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]
}

# The chart's fullname of the release (templates/_helpers.tpl "fractal.fullname").
release_fullname() {
  if [[ "${RELEASE}" == *fractal-server* ]]; then
    printf '%s' "${RELEASE}"
  else
    printf '%s-fractal-server' "${RELEASE}"
  fi
}

# curl through the gateway with the *.localhost names pinned to the host's loopback.
gateway_curl() {
  curl --resolve "${API_HOST}:${GATEWAY_PORT}:127.0.0.1" \
    --resolve "${S3_HOST}:${GATEWAY_PORT}:127.0.0.1" "$@"
}

# Read one field of a JSON document on stdin, e.g. `json_field access_token`.
json_field() {
  python3 -c 'import json, sys; value = json.load(sys.stdin).get(sys.argv[1]); print("" if value is None else value)' "$1"
}

create_cluster() {
  if kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; then
    log "Kind cluster '${CLUSTER_NAME}' exists, reusing it"
  else
    log "Creating Kind cluster '${CLUSTER_NAME}' (host ports ${GATEWAY_PORT} and 8443 must be free)"
    kind create cluster --name "${CLUSTER_NAME}" --config "${KIND_DIR}/cluster.yaml" --wait 120s
  fi
  kubectl config use-context "kind-${CLUSTER_NAME}" >/dev/null
}

# Builds the image and tags it with its content id, so that `helm upgrade` rolls the pods
# exactly when the image changed (a fixed tag with pullPolicy Never would not).
# --provenance=false: BuildKit otherwise attaches an attestation manifest whose timestamp
# changes the image id on every build (Docker's containerd image store), and the image
# becomes a manifest list that `kind load docker-image` cannot always import.
build_and_load_image() {
  log "Building image ${IMAGE_REPOSITORY}:dev"
  docker build --provenance=false --tag "${IMAGE_REPOSITORY}:dev" "${ROOT_DIR}"
  local image_id
  image_id="$(docker image inspect --format '{{.Id}}' "${IMAGE_REPOSITORY}:dev")"
  IMAGE_TAG="dev-${image_id#sha256:}"
  IMAGE_TAG="${IMAGE_TAG:0:16}"
  docker tag "${IMAGE_REPOSITORY}:dev" "${IMAGE_REPOSITORY}:${IMAGE_TAG}"
  log "Loading ${IMAGE_REPOSITORY}:${IMAGE_TAG} into the Kind node"
  if ! kind load docker-image "${IMAGE_REPOSITORY}:${IMAGE_TAG}" --name "${CLUSTER_NAME}"; then
    info "kind load docker-image failed; loading a saved archive instead"
    local archive
    archive="$(mktemp "${TMPDIR:-/tmp}/fractal-image.XXXXXX.tar")"
    docker save --output "${archive}" "${IMAGE_REPOSITORY}:${IMAGE_TAG}"
    kind load image-archive "${archive}" --name "${CLUSTER_NAME}" || {
      rm -f "${archive}"
      die "could not load ${IMAGE_REPOSITORY}:${IMAGE_TAG} into the Kind node"
    }
    rm -f "${archive}"
  fi
}

install_gateway() {
  log "Installing Traefik ${TRAEFIK_CHART_VERSION} (NodePorts 30080/30443 -> host ${GATEWAY_PORT}/8443)"
  helm repo add traefik https://traefik.github.io/charts --force-update >/dev/null
  helm upgrade --install traefik traefik/traefik \
    --version "${TRAEFIK_CHART_VERSION}" \
    --namespace traefik --create-namespace \
    --values "${KIND_DIR}/traefik-values.yaml" \
    --wait --timeout 5m

  log "Installing metrics-server ${METRICS_SERVER_CHART_VERSION} (CPU metrics for the worker autoscaler)"
  helm repo add metrics-server https://kubernetes-sigs.github.io/metrics-server/ --force-update >/dev/null
  # Kind's kubelets serve self-signed certificates.
  helm upgrade --install metrics-server metrics-server/metrics-server \
    --version "${METRICS_SERVER_CHART_VERSION}" \
    --namespace kube-system \
    --set 'args={--kubelet-insecure-tls}' \
    --wait --timeout 5m
}

install_chart() {
  log "Installing the chart as release '${RELEASE}' in namespace '${NAMESPACE}'"
  # --wait works: the migration Job is an ordinary resource of the release (no hook that
  # would wait for readiness), and api and worker become ready once it has migrated.
  helm upgrade --install "${RELEASE}" "${CHART_DIR}" \
    --namespace "${NAMESPACE}" --create-namespace \
    --values "${KIND_DIR}/values.yaml" \
    --set "image.repository=${IMAGE_REPOSITORY}" \
    --set "image.tag=${IMAGE_TAG}" \
    --wait --timeout 15m

  log "Waiting for the rollouts (timeout ${ROLLOUT_TIMEOUT} each)"
  local fullname workload
  fullname="$(release_fullname)"
  for workload in statefulset/"${fullname}"-postgresql statefulset/"${fullname}"-minio \
    deployment/"${fullname}"-redis deployment/"${fullname}"-temporal \
    deployment/"${fullname}"-api deployment/"${fullname}"-worker deployment/"${fullname}"-jaeger; do
    if kubectl --namespace "${NAMESPACE}" get "${workload}" >/dev/null 2>&1; then
      kubectl --namespace "${NAMESPACE}" rollout status "${workload}" --timeout "${ROLLOUT_TIMEOUT}"
    fi
  done
}

smoke_test() {
  log "Smoke test against ${API_URL}"
  local deadline=$((SECONDS + 120))
  until gateway_curl -fsS -o /dev/null "${API_URL}/readyz"; do
    ((SECONDS < deadline)) || die "${API_URL}/readyz did not answer 200 within 120 s"
    sleep 2
  done
  info "GET /readyz: ready"

  local username password status token body animation_id state
  username="smoke-$(date +%s)-${RANDOM}"
  password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"

  status="$(gateway_curl -sS -o /dev/null -w '%{http_code}' -X POST "${API_URL}/v1/auth/signup" \
    -H 'Content-Type: application/json' \
    -d "{\"username\":\"${username}\",\"password\":\"${password}\"}")"
  [[ "${status}" == 201 ]] || die "POST /v1/auth/signup answered ${status}, expected 201"
  info "POST /v1/auth/signup: 201 (user ${username})"

  body="$(gateway_curl -fsS -X POST "${API_URL}/v1/auth/token" \
    --data-urlencode "username=${username}" --data-urlencode "password=${password}")" ||
    die "POST /v1/auth/token failed"
  token="$(json_field access_token <<<"${body}")"
  [[ -n "${token}" ]] || die "POST /v1/auth/token returned no access_token: ${body}"
  info "POST /v1/auth/token: got an access token"

  body="$(gateway_curl -fsS -X POST "${API_URL}/v1/animations" \
    -H "Authorization: Bearer ${token}" -H 'Content-Type: application/json' \
    -d '{"width":160,"height":120,"frames":24}')" || die "POST /v1/animations failed"
  animation_id="$(json_field id <<<"${body}")"
  [[ -n "${animation_id}" ]] || die "POST /v1/animations returned no id: ${body}"
  info "POST /v1/animations: accepted, id ${animation_id}"

  deadline=$((SECONDS + SMOKE_TIMEOUT_SECONDS))
  while :; do
    # A failed poll (e.g. a 502 while an api pod restarts) is retried until the deadline.
    body="$(gateway_curl -fsS -H "Authorization: Bearer ${token}" "${API_URL}/v1/animations/${animation_id}")" ||
      body='{"state": "unknown (request failed)"}'
    state="$(json_field state <<<"${body}")"
    case "${state}" in
      succeeded) break ;;
      failed | canceled) die "animation ${animation_id} ended ${state}: ${body}" ;;
    esac
    ((SECONDS < deadline)) || die "animation still '${state}' after ${SMOKE_TIMEOUT_SECONDS} s: ${body}"
    info "state ${state}, progress $(json_field progress <<<"${body}")"
    sleep 2
  done
  info "GET /v1/animations/${animation_id}: succeeded"

  # Two steps on purpose: the presigned URL must be fetched without the API's bearer token
  # (S3 rejects a request that carries two kinds of authentication).
  local video_url output="${ROOT_DIR}/smoke-${animation_id}.mp4"
  video_url="$(gateway_curl -fsS -o /dev/null -w '%{redirect_url}' \
    -H "Authorization: Bearer ${token}" "${API_URL}/v1/animations/${animation_id}/video")" ||
    die "GET /v1/animations/${animation_id}/video failed"
  [[ "${video_url}" == http* ]] || die "GET /v1/animations/${animation_id}/video did not redirect"
  info "GET /v1/animations/${animation_id}/video: 302 to ${video_url%%\?*}?..."
  gateway_curl -fsS -o "${output}" "${video_url}" || die "downloading the presigned URL failed: ${video_url}"
  [[ "$(head -c 8 "${output}" | tail -c 4)" == ftyp ]] || die "${output} is not an MP4 file"
  info "downloaded $(wc -c <"${output}" | tr -d ' ') bytes of MP4 to ${output}"
}

main() {
  require_tools
  create_cluster
  build_and_load_image
  install_gateway
  install_chart
  if [[ "${SKIP_SMOKE_TEST:-0}" != 1 ]]; then
    smoke_test
  fi

  log "Fractal Animation Server is up"
  info "API              ${API_URL}   (docs: ${API_URL}/docs)"
  info "Temporal Web UI  http://temporal.localhost:${GATEWAY_PORT}   (user admin; password: kubectl -n ${NAMESPACE} get secret $(release_fullname)-temporal-ui-auth -o jsonpath='{.data.password}' | base64 -d)"
  info "S3 (presigned)   http://${S3_HOST}:${GATEWAY_PORT}"
  info "Traces (Jaeger)  http://jaeger.localhost:${GATEWAY_PORT}"
  info "Metrics:         kubectl -n ${NAMESPACE} port-forward svc/$(release_fullname)-api 9090  (then http://127.0.0.1:9090/metrics; see docs/operations.md)"
  info "Scale workers:   kubectl -n ${NAMESPACE} get hpa   (see docs/deployment.md: Scale the workers)"
  info "Tear down:       kind/down.sh"
}

main "$@"
