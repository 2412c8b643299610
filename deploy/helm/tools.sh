#!/usr/bin/env bash
# The chart's validation tools, built once into the cache and reused (CI caches the folder):
#   helm                 from the Go module proxy (no binary download is reachable here); the
#                        first build takes minutes (3m48s on 2 idle cores)
#   kubernetes-validate  Kubernetes' JSON schemas up to 1.37, offline (PyPI)
#   checkov              the security scan of the rendered manifests (PyPI)
#   CRD schemas          the operators' Go modules ship their CRD YAML: prometheus-operator
#                        (ServiceMonitor, PrometheusRule), cert-manager (Certificate), KEDA
#                        (ScaledObject); downloaded as module zips into $CACHE/gomod
# The Python tools live in a venv of their own: checkov's dependency tree stays out of the
# project's environment.
#   bash deploy/helm/tools.sh          build what is missing, print the cache folder
set -euo pipefail

HELM_VERSION="${KEEL_HELM_VERSION:-v4.3.2}"
KUBERNETES_VALIDATE_VERSION="1.37.0"
CHECKOV_VERSION="3.3.30"
# Pinned with the chart's tests (tests/deploy/test_helm.py reads the same versions).
CRD_MODULES="github.com/prometheus-operator/prometheus-operator@v0.85.0 github.com/cert-manager/cert-manager@v1.16.2 github.com/kedacore/keda/v2@v2.16.1"
CACHE="${KEEL_HELM_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/keel}"
BIN="$CACHE/bin"
VENV="$CACHE/helm-tools"
STAMP="$VENV/.keel-$KUBERNETES_VALIDATE_VERSION-$CHECKOV_VERSION"

mkdir -p "$BIN"
if [ ! -x "$BIN/helm" ] || [ ! -f "$BIN/.helm-$HELM_VERSION" ]; then
  command -v go >/dev/null || { echo "tools.sh: helm needs Go to build (apt-get install golang)" >&2; exit 2; }
  echo "tools.sh: building helm $HELM_VERSION into $BIN (a few minutes, once)" >&2
  GOBIN="$BIN" GOFLAGS=-mod=mod go install "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}" >&2
  # `helm version` of a `go install` build does not carry the patch version: a stamp does.
  touch "$BIN/.helm-$HELM_VERSION"
fi
if [ ! -f "$STAMP" ]; then
  echo "tools.sh: installing kubernetes-validate and checkov into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    "checkov==$CHECKOV_VERSION" >&2
  touch "$STAMP"
fi
# The CRD modules: `go mod download` keeps the zip under $CACHE/gomod/cache/download.
for module in $CRD_MODULES; do
  zip="$CACHE/gomod/cache/download/${module%@*}/@v/${module#*@}.zip"
  if [ ! -f "$zip" ]; then
    echo "tools.sh: downloading $module (CRD schemas)" >&2
    (cd "$CACHE" && GOMODCACHE="$CACHE/gomod" GOFLAGS=-mod=mod go mod download "$module" >&2)
  fi
done
echo "$CACHE"
