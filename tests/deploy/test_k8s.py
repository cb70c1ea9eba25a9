"""k8s/: every manifest valid against the Kubernetes API schemas (kubernetes-validate, offline,
strict: unknown fields are errors), labelled so `kubectl get pods -l app=whatsapp-bot-platform`
lists every pod, with probes, resources, and the pieces the operations guide relies on.

`kubectl apply --dry-run=client` needs an API server to discover kinds, so it cannot run here;
where kubectl is installed, `kubectl kustomize k8s/` builds the kustomization (offline) and its
output is validated too."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
MANIFESTS = sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")
LABEL = {"app": "whatsapp-bot-platform"}
KUBERNETES_VERSION = "1.30.0"  # the oldest version the manifests promise to work on


def _documents() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in _documents() if doc["kind"] == kind}


def _validate(*paths: str) -> None:
    validator = shutil.which("kubernetes-validate") or str(
        Path(sys.executable).parent / "kubernetes-validate"
    )
    for version in (KUBERNETES_VERSION, "1.37.0"):
        command = [validator, "--strict", "--no-warn", "-k", version, *paths]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_manifests_are_valid_kubernetes() -> None:
    _validate(*map(str, MANIFESTS))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed here")
def test_kustomization_builds_and_is_valid(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl") or "kubectl"
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    built = tmp_path / "built.yaml"
    built.write_text(result.stdout)
    _validate(str(built))
    kinds = {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc}
    assert {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "Job"} <= kinds
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in MANIFESTS if p.name != "secret.example.yaml")


def test_everything_carries_the_app_label() -> None:
    for doc in _documents():
        assert doc["metadata"]["labels"].items() >= LABEL.items(), doc["metadata"]["name"]
        template = doc.get("spec", {}).get("template")
        if template:  # pods of Deployments and Jobs
            assert template["metadata"]["labels"].items() >= LABEL.items()


def test_deployments_probes_resources_and_migration_wait() -> None:
    deployments = _by_kind("Deployment")
    assert set(deployments) == {"botplatform-app", "botplatform-worker", "botplatform-scheduler"}
    assert deployments["botplatform-scheduler"]["spec"]["replicas"] == 1
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (init,) = pod["initContainers"]
        assert init["args"][:2] == ["db", "wait"], name
        for container in pod["containers"] + pod["initContainers"]:
            assert container["resources"]["requests"] and container["resources"]["limits"]
            assert {"configMapRef", "secretRef"} <= {k for ref in container["envFrom"] for k in ref}
        main = pod["containers"][0]
        assert main["args"] == [name.removeprefix("botplatform-").replace("app", "serve")]
        assert "livenessProbe" in main
    app = deployments["botplatform-app"]["spec"]["template"]["spec"]["containers"][0]
    assert app["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert app["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    job = _by_kind("Job")["botplatform-migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "migrate"]


def test_scaling_disruption_and_ingress() -> None:
    hpas = _by_kind("HorizontalPodAutoscaler")
    assert hpas["botplatform-app"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    worker_metric = hpas["botplatform-worker"]["spec"]["metrics"][0]
    assert worker_metric["type"] == "External"
    # The metric the HPA asks for is the one docs/operations.md tells prometheus-adapter to serve.
    name = worker_metric["external"]["metric"]["name"]
    assert name in (ROOT / "docs" / "operations.md").read_text()
    pdbs = _by_kind("PodDisruptionBudget")
    assert set(pdbs) == {"botplatform-app", "botplatform-worker"}
    annotations = _by_kind("Ingress")["botplatform"]["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "16m"
    secret = _by_kind("Secret")["botplatform-secrets"]
    assert all(
        value == "" or "change-me" in value
        for key, value in secret["stringData"].items()
        if key not in ("REDIS_URL",)
    )
