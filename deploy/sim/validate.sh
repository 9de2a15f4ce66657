#!/usr/bin/env bash
# Validates the sharded-campaign manifests without running them: the GitHub Actions workflow
# against the workflow schema check-jsonschema vendors, the Kubernetes manifest against the
# Kubernetes 1.33 OpenAPI schemas kubernetes-validate ships (strict: unknown fields fail).
# Both tools come from PyPI into a venv cached outside the clone, installed only when missing
# (CI's `manifests` step; ~4 s warm, ~20 s with the install).
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${RILL_MANIFEST_VENV:-$HOME/.cache/rill/manifest-venv}"
tools=(check-jsonschema==0.39.0 kubernetes-validate==1.37.0)
if ! "$venv/bin/check-jsonschema" --version 2>/dev/null | grep -q "0.39.0" \
    || ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -q "1.37.0"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "${tools[@]}"
fi

"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows \
    .github/workflows/sim-shards.yml
"$venv/bin/kubernetes-validate" --strict --quiet -k 1.33.0 deploy/sim/k8s-indexed-job.yaml
echo "manifests: valid"
