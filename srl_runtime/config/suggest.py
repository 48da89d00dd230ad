"""'Did you mean' for unknown document fields: the typed models' own names, other RL libraries'
names for the same idea, and near misses (difflib)."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel

# Other RL libraries' names (Stable-Baselines3, CleanRL, RLlib, Sample Factory) for our fields, keyed
# by the normalised form (`_key`): suggested only where the target is a field of the model at hand.
SYNONYMS: dict[str, str] = {
    "gamma": "discount",
    "lambda": "gaeLambda",
    "lam": "gaeLambda",
    "gaelambda": "gaeLambda",
    "vtracelambda": "traceLambda",
    "lr": "learningRate",
    "nenvs": "envsPerSlot",
    "numenvs": "envsPerSlot",
    "numenvsperworker": "envsPerSlot",
    "numworkers": "replicas",
    "numactors": "replicas",
    "nsteps": "sampleSteps",
    "numsteps": "sampleSteps",
    "rolloutlength": "sampleSteps",
    "rolloutfragmentlength": "sampleSteps",
    "unrolllength": "sampleSteps",
    "clipcoef": "clipRatio",
    "cliprange": "clipRatio",
    "clipparam": "clipRatio",
    "entcoef": "entropyCoef",
    "entropycoeff": "entropyCoef",
    "vfcoef": "valueCoef",
    "vflosscoeff": "valueCoef",
    "clipvloss": "valueClip",
    "cliprangevf": "valueClip",
    "vfclipparam": "valueClip",
    "gradclip": "maxGradNorm",
    "nepochs": "epochs",
    "updateepochs": "epochs",
    "numsgditer": "epochs",
    "numepochs": "epochs",
    "numminibatches": "minibatches",
    "nminibatches": "minibatches",
    "normadv": "normalizeAdvantages",
    "totaltimesteps": "envFrames",
    "trainbatchsize": "batchSize",
    "vtracecliprhothreshold": "rhoClip",
    "vtraceclippgrhothreshold": "rhoClip",
    "env": "id",
    "envid": "id",
}


def _key(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (through Optional, list, dict, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, dict, tuple):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _model_at(root: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model whose fields the document path (aliases; list indices are skipped) points into."""
    model = root
    for part in path:
        if isinstance(part, int):
            continue
        field = next((f for name, f in model.model_fields.items() if (f.alias or name) == part), None)
        models = _models_in(field.annotation) if field is not None else []
        if not models:
            return None
        model = models[0]
    return model


def suggestion(root: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """A hint for the unknown field at `loc` (document path), or None: ' (did you mean X?)'."""
    if not loc or not isinstance(loc[-1], str):
        return None
    model = _model_at(root, loc[:-1])
    if model is None:
        return None
    unknown = loc[-1]
    known = [f.alias or name for name, f in model.model_fields.items()]
    by_key = {_key(name): name for name in known}
    exact = by_key.get(_key(unknown))
    if exact is not None:
        if "_" in unknown:
            return f" (documents use camelCase: {exact})"
        return f" (did you mean {exact}?)"
    synonym = SYNONYMS.get(_key(unknown))
    if synonym in known:
        return f" (did you mean {synonym}?)"
    close = difflib.get_close_matches(_key(unknown), list(by_key), n=1, cutoff=0.75)
    if close:
        return f" (did you mean {by_key[close[0]]}?)"
    return None
