#!/usr/bin/env bash
# Tear down what kind/up.sh created.
#   kind/down.sh                 delete the whole Kind cluster (release, data, Traefik)
#   kind/down.sh --release-only  uninstall the release and delete its namespace (PVCs and
#                                the credentials Secret included), keep the cluster
# Safe to re-run: missing things are reported and skipped.
set -euo pipefail

CLUSTER_NAME="${CLUSTER_NAME:-fractal}"
NAMESPACE="${NAMESPACE:-fractal}"
RELEASE="${RELEASE:-fractal}"

log() { printf '==> %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

release_only=false
case "${1:-}" in
  "") ;;
  --release-only) release_only=true ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; die "unknown argument: $1" ;;
esac

command -v kind >/dev/null 2>&1 || die "kind is not installed"

if ! kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; then
  log "Kind cluster '${CLUSTER_NAME}' does not exist, nothing to do"
  exit 0
fi

if [[ "${release_only}" == true ]]; then
  command -v helm >/dev/null 2>&1 || die "helm is not installed"
  command -v kubectl >/dev/null 2>&1 || die "kubectl is not installed"
  context="kind-${CLUSTER_NAME}"
  if helm status "${RELEASE}" --namespace "${NAMESPACE}" --kube-context "${context}" >/dev/null 2>&1; then
    log "Uninstalling release '${RELEASE}'"
    helm uninstall "${RELEASE}" --namespace "${NAMESPACE}" --kube-context "${context}" --wait
  else
    log "Release '${RELEASE}' is not installed"
  fi
  # The namespace holds what outlives the release on purpose: PVCs and the credentials
  # Secret (a hook). Deleting it starts the next install from scratch.
  log "Deleting namespace '${NAMESPACE}'"
  kubectl --context "${context}" delete namespace "${NAMESPACE}" --ignore-not-found --wait
else
  log "Deleting Kind cluster '${CLUSTER_NAME}'"
  kind delete cluster --name "${CLUSTER_NAME}"
fi
log "Done"
