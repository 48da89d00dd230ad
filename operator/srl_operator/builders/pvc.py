"""The PersistentVolumeClaim of the parameter DB (unless the spec names an existing claim)."""

from __future__ import annotations

from typing import Any

from srl_operator import naming
from srl_operator.builders.common import metadata, with_experiment_metadata
from srl_operator.config import OperatorConfig
from srl_runtime.config.experiment import RLExperiment

MOUNT_PATH = "/srl"  # the experiment's directory on the claim (subPath = experiment name)
PARAMS_PATH = f"{MOUNT_PATH}/params"  # the parameter DB
RUN_PATH = f"{MOUNT_PATH}/run"  # the workers' run directory (monitor state)


def claim_name(exp: RLExperiment) -> str:
    """The claim worker pods mount: the user's, or the one the operator creates."""
    return exp.spec.parameter_db.claim_name or naming.pvc_name(exp.metadata.name)


def parameter_db_pvc(exp: RLExperiment, cfg: OperatorConfig) -> dict[str, Any] | None:
    """None when spec.parameterDb.claimName points at an existing claim."""
    db = exp.spec.parameter_db
    if db.claim_name:
        return None
    name = exp.metadata.name
    spec: dict[str, Any] = {
        "accessModes": [db.access_mode or cfg.pvc_access_mode],
        "resources": {"requests": {"storage": db.size}},
    }
    if db.storage_class:
        spec["storageClassName"] = db.storage_class
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(naming.pvc_name(name), exp.metadata.namespace, naming.component_labels(name, "params")),
        "spec": spec,
    }
    return with_experiment_metadata(pvc, exp)
