"""The RLExperiment CustomResourceDefinition, generated from the experiment models.

`python -m srl_runtime.config.crd_schema` prints the CRD; `--write` writes it to every checked-in copy
(crds/rlexperiment.yaml, and the Helm chart's templates/crd.yaml, gated by the value crds.enabled). The spec schema comes from the pydantic models in
`srl_runtime.config.experiment` so the API server rejects at admission what `parse_experiment`
rejects locally:

- `$ref`s are inlined (structural schemas allow no references);
- `X | None` becomes `X` with `nullable: true` (structural schemas allow no anyOf-with-null), except
  enums defaulting to None: the API server rejects null for an enum even when nullable, so there
  null is left to pruning (absent == None);
- ge/gt/le/lt, min_length, Literal and descriptions carry over; JSON Schema 2020's numeric
  `exclusiveMinimum` becomes OpenAPI 3.0's `minimum` + `exclusiveMinimum: true`;
- model defaults become schema defaults (the API server stores them, so `kubectl get -o yaml` shows
  the effective spec and the scale subresource always finds `spec.actors.replicas`);
- `additionalProperties: false` is dropped: structural schemas prune unknown fields instead
  (`kubectl apply` warns about them), and free-form dicts keep `x-kubernetes-preserve-unknown-fields`;
- model validators (cross-field rules) are mirrored as CEL `x-kubernetes-validations` in
  `CEL_RULES`; tests check each against the pydantic validator on the same documents.

The status schema is defined here too (`ExperimentStatus`), since the operator writes it and the CRD
publishes it.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from srl_runtime.config.experiment import (
    API_VERSION,
    KIND,
    URI_CREDENTIALS_PROBLEM,
    URI_USERINFO_PATTERN,
    ExperimentSpec,
    TrainerSpec,
)

GROUP, VERSION = API_VERSION.split("/")
PLURAL = "rlexperiments"
SINGULAR = "rlexperiment"
SHORT_NAMES = ["rlx"]
CATEGORIES = ["srl"]

REPO = Path(__file__).resolve().parents[2]
# The checked-in CRD (`kubectl apply -f crds/`); the drift test compares it to `crd_yaml()`.
CRD_PATHS = [REPO / "crds" / "rlexperiment.yaml"]
# The same CRD as a template of the Helm chart (`crd_helm_template()`), so `helm upgrade` updates it:
# Helm installs a chart's crds/ directory once and never touches it again.
CHART_CRD_TEMPLATE = REPO / "charts" / "srl-operator" / "templates" / "crd.yaml"
REGENERATE_COMMAND = "python -m srl_runtime.config.crd_schema --write"
GENERATED_BY = "python -m srl_runtime.config.crd_schema"

# --------------------------------------------------------------------------- status


class _StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Condition(_StatusModel):
    """A Kubernetes-style condition."""

    type: str = Field(description="Condition type, e.g. WorkersReady, NameRecordsReachable, SpecValid, Complete.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field("", description="One-word CamelCase reason for the last transition.")
    message: str = Field("", description="Human-readable detail.")
    last_transition_time: str | None = Field(None, description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(None, description="metadata.generation the condition was computed for.")


class RoleStatus(_StatusModel):
    """Observed worker pods of one role."""

    desired: int = Field(0, description="Pods the spec asks for (0 while suspended).")
    replicas: int = Field(0, description="Pods that exist and are not terminating.")
    ready: int = Field(0, description="Pods running with all containers ready.")
    restarts: int = Field(0, description="Failed or lost pods the operator replaced since it started watching.")
    selector: str = Field("", description="Label selector of this role's pods (for the scale subresource).")


class ExperimentStatus(_StatusModel):
    """What the operator observes about an experiment."""

    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Suspended"] | None = Field(
        None, description="Pending, Running, Succeeded, Failed or Suspended."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Current conditions.")
    actors: RoleStatus | None = Field(None, description="Actor worker pods.")
    policy_workers: RoleStatus | None = Field(None, description="Policy worker pods.")
    trainers: RoleStatus | None = Field(None, description="Trainer worker pods.")
    evaluation: RoleStatus | None = Field(None, description="Evaluation worker pod.")
    actors_ready: str | None = Field(None, description="Actors ready/desired, e.g. 3/4 (for printing).")
    policy_version: int | None = Field(None, description="Latest policy version (from the name records).")
    frames_per_second: float | None = Field(None, description="Environment frames per second (from the name records).")
    env_frames: int | None = Field(None, description="Environment frames so far (from the name records).")
    train_steps: int | None = Field(None, description="Trainer steps so far (from the name records).")
    mean_return: float | None = Field(None, description="Recent mean episode return (from the name records).")
    stop_reason: str | None = Field(None, description="Why training stopped, e.g. target_mean_return (from the name records).")
    observed_generation: int | None = Field(None, description="metadata.generation the status reflects.")


# --------------------------------------------------------------------------- CEL mirrors of model validators

# Model class name -> x-kubernetes-validations. Each rule mirrors a pydantic model validator so the API
# server rejects the same documents; `fieldPath` points the error at the field the validator names.
CEL_RULES: dict[str, list[dict[str, str]]] = {
    "EnvironmentSpec": [
        {
            "rule": "has(self.id) != has(self.entryPoint)",
            "message": "exactly one of id or entryPoint must be set",
            "fieldPath": ".id",
        },
        {
            "rule": "!has(self.entryPoint) || self.entryPoint.contains(':')",
            "message": "entryPoint must look like 'module:Class'",
            "fieldPath": ".entryPoint",
        },
    ],
    "MongoSpec": [
        {
            # The error names the field, never the value: the URI would carry the password.
            "rule": f"!has(self.uri) || !self.uri.matches('{URI_USERINFO_PATTERN}')",
            "message": URI_CREDENTIALS_PROBLEM,
            "fieldPath": ".uri",
        },
    ],
    "ParameterDBSpec": [
        {
            "rule": "!has(self.metadata) || self.metadata != 'mongodb' || has(self.mongodb)",
            "message": "metadata: mongodb needs a mongodb block",
            "fieldPath": ".mongodb",
        },
    ],
    "PolicySpec": [
        {
            "rule": "!has(self.centralizedValue) || !self.centralizedValue || ((!has(self.encoder) || self.encoder == 'mlp')"
            " && !(has(self.sharedEncoder) && self.sharedEncoder) && !has(self.rnn))",
            "message": "needs a separate MLP critic (encoder mlp, sharedEncoder false, no rnn)",
            "fieldPath": ".centralizedValue",
        },
    ],
    "PPOSpec": [
        {
            "rule": "!(has(self.popart) && self.popart && has(self.normalizeReturns) && self.normalizeReturns)",
            "message": "cannot be combined with popart (PopArt normalises the targets itself)",
            "fieldPath": ".normalizeReturns",
        },
    ],
    "AlgorithmSpec": [
        {
            "rule": "!has(self.ppg) || !has(self.impala)",
            "message": "cannot be combined with ppg",
            "fieldPath": ".impala",
        },
    ],
    "StopSpec": [
        {
            "rule": "has(self.envFrames) || has(self.trainSteps) || has(self.wallSeconds) || has(self.targetMeanReturn)",
            "message": "set at least one of envFrames, trainSteps, wallSeconds, targetMeanReturn",
        },
    ],
    "ExperimentSpec": [
        {
            "rule": "!has(self.trainers) || !has(self.trainers.replicas) || self.trainers.replicas >= 1",
            "message": "must be >= 1",
            "fieldPath": ".trainers.replicas",
        },
        {
            "rule": "!has(self.streams) || !has(self.streams.inference) || !(self.streams.inference in ['shm', 'zmq'])"
            " || (has(self.policyWorkers) && has(self.policyWorkers.replicas) && self.policyWorkers.replicas >= 1)",
            "message": "shm/zmq need policyWorkers.replicas >= 1",
            "fieldPath": ".streams.inference",
        },
        {
            "rule": "!has(self.streams) || !has(self.streams.inference) || self.streams.inference != 'inline'"
            " || !has(self.policyWorkers) || !has(self.policyWorkers.replicas) || self.policyWorkers.replicas == 0",
            "message": "inline needs policyWorkers.replicas = 0",
            "fieldPath": ".streams.inference",
        },
        {
            "rule": "!has(self.actors) || (has(self.actors.inferenceSplits) ? self.actors.inferenceSplits : 1)"
            " <= (has(self.actors.envsPerSlot) ? self.actors.envsPerSlot : 8)",
            "message": "must be <= envsPerSlot",
            "fieldPath": ".actors.inferenceSplits",
        },
        {
            "rule": "!has(self.algorithm) || !has(self.algorithm.ppg) || !has(self.policy) || !has(self.policy.rnn)",
            "message": "needs a feed-forward policy (policy.rnn unset)",
            "fieldPath": ".algorithm.ppg",
        },
        {
            "rule": "!has(self.policy) || !has(self.policy.centralizedValue) || !self.policy.centralizedValue"
            " || has(self.environment.entryPoint)",
            "message": "needs a multi-agent srl Environment (environment.entryPoint)",
            "fieldPath": ".policy.centralizedValue",
        },
        {
            "rule": "!has(self.trainers) || (has(self.trainers.bufferCapacity) ? self.trainers.bufferCapacity : "
            f"{TrainerSpec.model_fields['buffer_capacity'].default}) >= (has(self.trainers.batchSize) ? "
            f"self.trainers.batchSize : {TrainerSpec.model_fields['batch_size'].default})",
            "message": "must be >= trainers.batchSize (else no batch ever fits)",
            "fieldPath": ".trainers.bufferCapacity",
        },
        {
            "rule": "!has(self.algorithm) || has(self.algorithm.impala) || !has(self.algorithm.ppo)"
            " || !has(self.algorithm.ppo.lrSchedule) || self.algorithm.ppo.lrSchedule != 'linear' || has(self.stop.trainSteps)",
            "message": "linear decays to 0 over stop.trainSteps, which is not set",
            "fieldPath": ".algorithm.ppo.lrSchedule",
        },
        {
            "rule": "!has(self.algorithm) || !has(self.algorithm.impala) || !has(self.algorithm.impala.lrSchedule)"
            " || self.algorithm.impala.lrSchedule != 'linear' || has(self.stop.trainSteps)",
            "message": "linear decays to 0 over stop.trainSteps, which is not set",
            "fieldPath": ".algorithm.impala.lrSchedule",
        },
    ],
}

# Free-form strings get a bound so CEL cost estimation (and etcd) stay sane.
MAX_STRING_LENGTH = 4096


# --------------------------------------------------------------------------- JSON schema -> structural schema


def _models_by_name(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model class reachable from `root`'s fields, by class name (pydantic's $defs keys)."""
    found: dict[str, type[BaseModel]] = {}
    stack = [root]
    while stack:
        cls = stack.pop()
        if cls.__name__ in found:
            continue
        found[cls.__name__] = cls
        for field in cls.model_fields.values():
            for arg in _type_args(field.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    stack.append(arg)
    return found


def _type_args(annotation: Any) -> list[Any]:
    out = [annotation]
    for arg in getattr(annotation, "__args__", ()) or ():
        out.extend(_type_args(arg))
    return out


def _field_default(cls: type[BaseModel], alias: str) -> tuple[bool, Any]:
    """(has_default, default) for the field with this alias, as the API server should store it."""
    for name, field in cls.model_fields.items():
        if (field.alias or name) != alias:
            continue
        if field.default_factory is not None:
            value = field.default_factory()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                return True, {}  # the API server then fills the nested defaults
            if value in ({}, []):
                return False, None  # absent means empty; no need to store it
            return True, value
        if field.is_required() or field.default is None:
            return False, None
        return True, field.default
    return False, None


def _field_description(cls: type[BaseModel], alias: str) -> str | None:
    for name, field in cls.model_fields.items():
        if (field.alias or name) == alias:
            return field.description
    return None


class _Converter:
    """Turns one pydantic JSON schema into a structural OpenAPI v3 schema."""

    def __init__(self, root: type[BaseModel], cel: bool = True) -> None:
        self.root_schema = root.model_json_schema(by_alias=True, mode="validation")
        self.defs: dict[str, Any] = self.root_schema.get("$defs", {})
        self.models = _models_by_name(root)
        self.cel = cel
        self.root_name = root.__name__

    def convert(self) -> dict[str, Any]:
        return self._node(self.root_schema, model_name=self.root_name)

    def _node(self, node: dict[str, Any], model_name: str | None = None) -> dict[str, Any]:
        node = copy.deepcopy(node)
        if "$ref" in node:
            ref_name = node.pop("$ref").rsplit("/", 1)[-1]
            merged = {**self.defs[ref_name], **node}  # the field's own description wins
            return self._node(merged, model_name=ref_name)
        if "anyOf" in node:
            branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
            if len(branches) != 1:
                raise ValueError(f"unsupported union in schema: {branches}")
            inner = self._node(branches[0])
            outer = {k: v for k, v in node.items() if k in ("description", "default")}
            inner.update(outer)
            if "enum" in inner and outer.get("default") is None:
                # The API server rejects null for an enum even with nullable: true (and null listed);
                # a non-nullable field's null is pruned instead, which is the same as the None default.
                return self._clean(inner)
            inner["nullable"] = True
            return self._clean(inner)
        out: dict[str, Any] = {}
        for key in ("description", "type", "enum", "minimum", "maximum", "minItems", "maxItems",
                    "minLength", "maxLength", "pattern", "default", "required"):  # fmt: skip
            if key in node:
                out[key] = node[key]
        if "const" in node:
            out["enum"] = [node["const"]]
        if "exclusiveMinimum" in node:
            out["minimum"] = node["exclusiveMinimum"]
            out["exclusiveMinimum"] = True
        if "exclusiveMaximum" in node:
            out["maximum"] = node["exclusiveMaximum"]
            out["exclusiveMaximum"] = True
        if node.get("type") == "object":
            self._object(node, out, model_name)
        if node.get("type") == "array" and "items" in node:
            out["items"] = self._node(node["items"])
        if node.get("type") == "string" and "enum" not in out and "maxLength" not in out:
            out["maxLength"] = MAX_STRING_LENGTH
        return self._clean(out)

    def _object(self, node: dict[str, Any], out: dict[str, Any], model_name: str | None) -> None:
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if props:
            model = self.models.get(model_name or "")
            out["properties"] = {}
            for alias, sub in props.items():
                prop = self._node(sub)
                if model is not None:
                    desc = _field_description(model, alias)
                    if desc:
                        prop["description"] = desc
                    has_default, default = _field_default(model, alias)
                    prop.pop("default", None)
                    if has_default:
                        prop["default"] = default
                out["properties"][alias] = self._clean(prop)
            if self.cel and model_name in CEL_RULES:
                out["x-kubernetes-validations"] = copy.deepcopy(CEL_RULES[model_name])
        elif isinstance(extra, dict):
            out["additionalProperties"] = self._node(extra)  # a map: dict[str, X]
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True  # free-form: dict[str, Any]

    @staticmethod
    def _clean(node: dict[str, Any]) -> dict[str, Any]:
        node.pop("title", None)
        node.pop("additionalProperties", None) if node.get("additionalProperties") is False else None
        if node.get("default", 0) is None:
            node.pop("default")
        return node


def spec_schema(cel: bool = True) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of `.spec`."""
    return _Converter(ExperimentSpec, cel=cel).convert()


def status_schema() -> dict[str, Any]:
    """The structural OpenAPI v3 schema of `.status`."""
    schema = _Converter(ExperimentStatus, cel=False).convert()
    schema["properties"]["conditions"]["x-kubernetes-list-type"] = "map"
    schema["properties"]["conditions"]["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "annotations": {"srl.dev/generated-by": GENERATED_BY},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": CATEGORIES,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "description": "An SRL reinforcement-learning experiment: actor, policy and "
                            "trainer workers, name records and a parameter database.",
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "srl.dev/v1alpha1"},
                                "kind": {"type": "string", "description": "RLExperiment"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.actors.replicas",
                            "statusReplicasPath": ".status.actors.replicas",
                            "labelSelectorPath": ".status.actors.selector",
                        },
                    },
                    "additionalPrinterColumns": [
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {"name": "Actors", "type": "string", "jsonPath": ".status.actorsReady",
                         "description": "Actor pods ready/desired"},
                        {"name": "Version", "type": "integer", "jsonPath": ".status.policyVersion",
                         "description": "Latest policy version"},
                        {"name": "FPS", "type": "number", "jsonPath": ".status.framesPerSecond",
                         "description": "Environment frames per second"},
                        {"name": "MeanReturn", "type": "number", "jsonPath": ".status.meanReturn",
                         "description": "Recent mean episode return"},
                        {"name": "TrainSteps", "type": "integer", "jsonPath": ".status.trainSteps",
                         "description": "Trainer steps so far"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],  # fmt: skip
                }
            ],
        },
    }


HEADER = f"# Generated from srl_runtime/config/experiment.py — do not edit; run `{REGENERATE_COMMAND}`.\n"


def crd_yaml() -> str:
    """The CRD as the YAML text that is checked in."""
    return HEADER + yaml.safe_dump(crd(), sort_keys=False, width=100, allow_unicode=True)


def crd_helm_template(definition: dict[str, Any] | None = None) -> str:
    """The CRD (`definition`, default `crd()`) as the chart's templates/crd.yaml.

    Rendered when the value `crds.enabled` is true (the default; a second release of the chart in
    the same cluster sets it false, since one release owns the CRD). `crds.keep` (default true) adds
    `helm.sh/resource-policy: keep`: `helm uninstall` then leaves the CRD, and with it every
    RLExperiment, in place, as cert-manager's chart does.
    """
    definition = definition if definition is not None else crd()
    spec = yaml.safe_dump({"spec": definition["spec"]}, sort_keys=False, width=100, allow_unicode=True)
    if "{{" in spec:  # a lone "}}" is plain text to Go templates; "{{" would start an action
        raise ValueError("the CRD's text holds '{{', which Helm would read as a template action")
    meta = definition["metadata"]
    annotations = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in sorted((meta.get("annotations") or {}).items()))
    return (
        "{{/* " + HEADER.removeprefix("# ").rstrip("\n") + " */}}\n"
        + "{{- if .Values.crds.enabled }}\n"
        + f"apiVersion: {definition['apiVersion']}\n"
        + f"kind: {definition['kind']}\n"
        + "metadata:\n"
        + f"  name: {meta['name']}\n"
        + "  labels:\n"
        + '    {{- include "srl-operator.labels" . | nindent 4 }}\n'
        + "  annotations:\n"
        + "    {{- if .Values.crds.keep }}\n"
        + "    helm.sh/resource-policy: keep\n"
        + "    {{- end }}\n"
        + annotations
        + spec
        + "{{- end }}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print (or --write) the generated RLExperiment CRD.")
    parser.add_argument("--write", action="store_true", help="write every checked-in copy: " + ", ".join(
        str(p.relative_to(REPO)) for p in [*CRD_PATHS, CHART_CRD_TEMPLATE]))  # fmt: skip
    args = parser.parse_args(argv)
    text = crd_yaml()
    if not args.write:
        sys.stdout.write(text)
        return 0
    outputs = [(path, text) for path in CRD_PATHS] + [(CHART_CRD_TEMPLATE, crd_helm_template())]
    for path, content in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        print(f"wrote {path.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
