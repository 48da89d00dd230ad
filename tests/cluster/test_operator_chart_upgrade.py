"""`helm upgrade` upgrades the RLExperiment CRD (the chart's templates/crd.yaml), on a real API server.

Helm installs a chart's crds/ directory once and never again; as a template the CRD follows the chart:
an upgrade to a chart whose CRD differs changes the CRD in the cluster, and `helm uninstall` keeps it
(helm.sh/resource-policy: keep), so no RLExperiment is deleted with the operator.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from controlplane import ControlPlane
from test_operator_fixtures import (
    CHART,
    CRD,
    CRD_NAME,
    OPERATOR_NAMESPACE,
    RELEASE,
    adopt_crd,
    eventually,
    install_chart,
)

from srl_runtime.config import crd_schema

pytestmark = pytest.mark.cluster

PROBE_COLUMN = {"name": "Probe", "type": "string", "jsonPath": ".status.upgradeProbe", "description": "added by the test chart"}


def _crd(cp: ControlPlane) -> dict[str, Any]:
    return cp.kubectl_json("get", "crd", CRD_NAME)


def _version(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    return version


def _columns(crd: dict[str, Any]) -> list[str]:
    return [c["name"] for c in _version(crd)["additionalPrinterColumns"]]


def _status_fields(crd: dict[str, Any]) -> set[str]:
    return set(_version(crd)["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"])


def _changed_chart(tmp: Path) -> Path:
    """A copy of the chart whose CRD has one more printer column and one more status field."""
    changed = crd_schema.crd()
    version = _version(changed)
    version["additionalPrinterColumns"].insert(-1, PROBE_COLUMN)
    version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["upgradeProbe"] = {
        "type": "string", "description": "a field only the test chart has",
    }  # fmt: skip
    chart = tmp / "srl-operator"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "crd.yaml").write_text(crd_schema.crd_helm_template(changed))
    return chart


def test_helm_upgrade_changes_the_crd(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> None:
    cp = control_plane
    generated = crd_schema.crd()
    # The CRD as a chart with crds/ left it: applied, but owned by no release (and no release yet:
    # an earlier module's release would own it already).
    cp.helm("uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--wait", check=False)
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cp.kubectl("annotate", "crd", CRD_NAME, "meta.helm.sh/release-name-", "meta.helm.sh/release-namespace-", check=False)
    cp.kubectl("label", "crd", CRD_NAME, "app.kubernetes.io/managed-by-", check=False)
    rejected = cp.helm("upgrade", "--install", RELEASE, str(CHART), "-n", OPERATOR_NAMESPACE, "--create-namespace",
                       "--set", f"watchNamespaces[0]={namespace}", check=False)  # fmt: skip
    assert rejected.returncode != 0 and "ownership" in rejected.stderr, rejected.stderr  # why docs/operator.md says adopt it
    assert adopt_crd(cp)

    install_chart(cp, [namespace])
    crd = _crd(cp)
    meta = crd["metadata"]
    assert meta["annotations"]["helm.sh/resource-policy"] == "keep"
    assert meta["annotations"]["meta.helm.sh/release-name"] == RELEASE
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert _columns(crd) == _columns(generated) and "upgradeProbe" not in _status_fields(crd)

    # helm upgrade to a chart whose CRD differs: the API server serves the changed CRD.
    install_chart(cp, [namespace], chart=_changed_chart(tmp_path))

    def with_probe() -> dict[str, Any] | None:
        crd = _crd(cp)
        return crd if "Probe" in _columns(crd) else None

    upgraded = eventually(with_probe, 30, what="the Probe column")
    assert _columns(upgraded) == [*_columns(generated)[:-1], "Probe", "Age"]
    assert "upgradeProbe" in _status_fields(upgraded)
    history = json.loads(cp.helm("history", RELEASE, "-n", OPERATOR_NAMESPACE, "-o", "json").stdout)
    assert history[-1]["status"] == "deployed"

    # And back to the repository's chart: the column and the field go again.
    install_chart(cp, [namespace])
    restored = _crd(cp)
    assert _columns(restored) == _columns(generated) and "upgradeProbe" not in _status_fields(restored)
    assert _version(restored)["schema"] == _version(generated)["schema"]


def test_uninstall_keeps_the_crd_and_its_experiments(control_plane: ControlPlane, namespace: str) -> None:
    cp = control_plane
    install_chart(cp, [namespace])
    doc = {"apiVersion": "srl.dev/v1alpha1", "kind": "RLExperiment", "metadata": {"name": "kept", "namespace": namespace},
           "spec": {"environment": {"id": "CartPole-v1"}, "stop": {"trainSteps": 10}}}  # fmt: skip
    cp.kubectl("create", "-f", "-", input=json.dumps(doc))
    cp.helm("uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--wait")
    assert _crd(cp)["metadata"]["name"] == CRD_NAME
    assert cp.kubectl_json("get", "rlx", "kept", "-n", namespace)["metadata"]["name"] == "kept"
    # A later install adopts the kept CRD (it still names this release) without any manual step.
    install_chart(cp, [namespace])
    assert _crd(cp)["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
    cp.kubectl("delete", "rlx", "kept", "-n", namespace, "--wait=false")
