"""The e2e tier's images, for tests and the node: refs as images/e2e-images.json defines them, and
the tarballs scripts/build-images.sh saved ($SRL_E2E_CACHE/images/manifest.json).

    from images import FERRETDB_IMAGE, OPERATOR_IMAGE, REDIS_IMAGE, RUNTIME_IMAGE, built_images
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_images.py"
_spec = importlib.util.spec_from_file_location("srl_build_images", _SCRIPT)
assert _spec is not None and _spec.loader is not None
build_images = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = build_images  # dataclasses resolve their module through sys.modules
_spec.loader.exec_module(build_images)

Entry = build_images.Entry  # one manifest line: name, ref, tar, input_hash, image_id

REFS: dict[str, str] = {image.name: image.ref for image in build_images.load_spec().images}
RUNTIME_IMAGE = REFS["runtime"]  # worker pods (runtimeImage in the chart)
OPERATOR_IMAGE = REFS["operator"]  # the operator pod (image in the chart)
REDIS_IMAGE = REFS["redis"]  # per-experiment Redis (redisImage in the chart)
FERRETDB_IMAGE = REFS["ferretdb"]  # MongoDB wire protocol for metadata (mongodb.image in the chart)


def manifest_path() -> Path:
    return build_images.cache_dir() / "images" / "manifest.json"


def built_images() -> list[Entry]:
    """Every image of the spec with its tarball; a clear error when one is missing or stale-named."""
    entries = build_images.read_manifest(manifest_path())
    missing = [n for n, ref in REFS.items() if n not in entries or entries[n].ref != ref]
    missing += [n for n, e in entries.items() if n in REFS and not Path(e.tar).is_file()]
    if missing:
        raise FileNotFoundError(
            f"images {sorted(set(missing))} not built in {manifest_path()}: run scripts/build-images.sh"
        )
    return [entries[n] for n in REFS]
