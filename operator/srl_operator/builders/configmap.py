"""The ConfigMap holding the experiment document every worker reads (/etc/srl/experiment.yaml)."""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from srl_operator import naming
from srl_operator.builders.common import metadata, with_experiment_metadata
from srl_runtime.config.experiment import FailurePolicySpec, RLExperiment

EXPERIMENT_KEY = "experiment.yaml"
MOUNT_DIR = "/etc/srl"
EXPERIMENT_PATH = f"{MOUNT_DIR}/{EXPERIMENT_KEY}"


def experiment_document(exp: RLExperiment) -> str:
    """The validated document (defaults filled in) as YAML; metadata is just name and namespace."""
    doc = {
        "apiVersion": exp.api_version,
        "kind": exp.kind,
        "metadata": {"name": exp.metadata.name, "namespace": exp.metadata.namespace},
        "spec": exp.spec.model_dump(mode="json", by_alias=True),  # nulls kept: null != default
    }
    return yaml.safe_dump(doc, sort_keys=False)


def running_document_hash(exp: RLExperiment) -> str:
    """Hash of the document a running worker depends on: every field except those the operator
    applies live without restarting workers (`actors.replicas`: the scale subresource; `suspend`;
    the restart settings `<role>.restartLimit` and `failurePolicy`, which only the operator reads).

    Worker pods carry it in their template, so any other spec edit rolls the workers and no pod keeps
    running on an older document than the one its replacement would read.
    """
    live = exp.model_copy(deep=True)
    live.spec.actors.replicas = 0
    live.spec.suspend = False
    for role in (live.spec.actors, live.spec.policy_workers, live.spec.trainers, live.spec.evaluation):
        role.restart_limit = 0
    live.spec.failure_policy = FailurePolicySpec()
    return hashlib.sha256(experiment_document(live).encode()).hexdigest()[:16]


def experiment_configmap(exp: RLExperiment) -> dict[str, Any]:
    name = exp.metadata.name
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            naming.configmap_name(name), exp.metadata.namespace, naming.component_labels(name, "experiment")
        ),
        "data": {EXPERIMENT_KEY: experiment_document(exp)},
    }
    return with_experiment_metadata(cm, exp)
