#!/usr/bin/env bash
# Renders the Kustomize manifests in deploy/ and validates the result
# offline against the Kubernetes API schemas (PyPI `kubernetes-validate`,
# installed once into a cached virtualenv; later runs need no network).
# CRDs are validated as apiextensions.k8s.io/v1 objects; that their schemas
# are accepted by a real 1.20 apiserver is checked by the cairn-kube
# integration tests, which install them.
#
#   scripts/validate-deploy.sh        exit 0 when every object is valid
set -euo pipefail
cd "$(dirname "$0")/.."

version=1.37.0
venv="${CAIRN_TOOLS:-$HOME/.cache/cairn/tools}/kubernetes-validate-$version"
if [[ ! -x "$venv/bin/kubernetes-validate" ]]; then
    echo "validate-deploy: installing kubernetes-validate $version into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$version"
fi

rendered="$(mktemp "${TMPDIR:-/tmp}/cairn-deploy.XXXXXX.yaml")"
trap 'rm -f "$rendered"' EXIT
kubectl kustomize deploy > "$rendered"
echo "validate-deploy: $(grep -c '^kind:' "$rendered") objects rendered from deploy/" >&2
# The optional helper-pod policy (Kubernetes 1.30+; the 1.25 schemas lack it).
policy="$(mktemp "${TMPDIR:-/tmp}/cairn-policy.XXXXXX.yaml")"
trap 'rm -f "$rendered" "$policy"' EXIT
kubectl kustomize deploy/helper-pod-policy > "$policy"
"$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$policy"

# deploy/ with the optional block-volumes component (a privileged agent
# with the host's /dev), as a user's kustomization would combine them.
variant="$(mktemp -d "${TMPDIR:-/tmp}/cairn-variant.XXXXXX")"
trap 'rm -f "$rendered" "$policy"; rm -rf "$variant"' EXIT
# Kustomize takes only relative paths to other kustomizations.
deploy="$(realpath --relative-to="$variant" deploy)"
cat > "$variant/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$deploy]
components: [$deploy/block-volumes]
YAML
kubectl kustomize "$variant" > "$variant/rendered.yaml"
"$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$variant/rendered.yaml"

# deploy/ as Velero's data mover (its RBAC and the controller's flags).
cat > "$variant/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$deploy]
components: [$deploy/velero]
YAML
kubectl kustomize "$variant" > "$variant/rendered.yaml"
grep -q -- '--velero-namespace=velero' "$variant/rendered.yaml"
"$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$variant/rendered.yaml"

# Alerts and dashboard: a PrometheusRule (a CRD the schemas lack) and a
# ConfigMap. They must render; their queries are checked against the
# metrics cairn exports by crates/cairn-kube/tests/monitoring.rs.
kubectl kustomize deploy/monitoring > /dev/null

# The oldest schema set the validator ships and the newest, strictly
# (unknown fields are errors).
for k in 1.25.0 "$version"; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$k" "$rendered"
done
echo "validate-deploy: ok" >&2
