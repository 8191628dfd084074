#!/usr/bin/env bash
# Checks the deployment kit, as CI does: every Kustomize overlay renders and
# validates against the Kubernetes JSON schemas (kubernetes-validate,
# strict); the Prometheus alerts load and pass their unit tests (promtool).
set -euo pipefail
cd "$(dirname "$0")/.."
for overlay in deploy/kubernetes/overlays/*/; do
    rendered=$(mktemp)
    kubectl kustomize "$overlay" > "$rendered"
    kubernetes-validate --strict --quiet "$rendered"
    echo "deploy: $overlay renders $(grep -c '^kind:' "$rendered") valid objects"
    rm -f "$rendered"
done
promtool check rules deploy/prometheus/alerts.yaml
(cd deploy/prometheus && promtool test rules alerts.test.yaml)
