"""scripts/build_images.py decides when an e2e image is rebuilt: from its Dockerfile, the files its
COPY lines read (minus .dockerignore) and its build args; a manifest entry counts only with its tarball."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("srl_build_images", REPO / "scripts" / "build_images.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bi = _load()


def _context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "src" / "__pycache__").mkdir(parents=True)
    (ctx / "src" / "a.py").write_text("A = 1\n")
    (ctx / "src" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (ctx / "other.txt").write_text("not copied\n")
    (ctx / ".dockerignore").write_text("# comment\n**/__pycache__\n**/*.pyc\n")
    (ctx / "Dockerfile").write_text(
        "FROM ${BASE} AS one\nCOPY src \\\n  ./src\nFROM ${BASE}\nCOPY --from=one /src /src\n"
    )
    return ctx


def _image(ctx: Path, **args: str):
    return bi.ImageSpec(
        name="x", ref="srl.local/x:e2e", dockerfile=ctx / "Dockerfile", context=ctx,
        target=None, build_args=dict(args),
    )


def test_input_hash_follows_copied_files_and_args_only(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    image = _image(ctx)
    first = bi.input_hash(image, ctx, {"BASE": "b:1"})
    (ctx / "other.txt").write_text("changed, still not copied\n")
    (ctx / "src" / "__pycache__" / "b.cpython-311.pyc").write_bytes(b"\1")
    assert bi.input_hash(image, ctx, {"BASE": "b:1"}) == first
    assert bi.input_hash(image, ctx, {"BASE": "b:2"}) != first
    (ctx / "src" / "a.py").write_text("A = 2\n")
    second = bi.input_hash(image, ctx, {"BASE": "b:1"})
    assert second != first
    (ctx / "src" / "a.py").chmod(0o755)
    assert bi.input_hash(image, ctx, {"BASE": "b:1"}) != second


def test_copy_sources_skip_other_stages_and_join_continued_lines(tmp_path: Path) -> None:
    assert bi.copy_sources(_context(tmp_path) / "Dockerfile") == ["src"]


def test_dockerignore_patterns_exclude_what_docker_does(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text(".git\n**/*.pyc\nbuild\nbench/results\n")
    pats = bi.dockerignore_patterns(tmp_path)
    assert bi.ignored(".git/config", pats)
    assert bi.ignored("a/b/c.pyc", pats) and bi.ignored("c.pyc", pats)
    assert bi.ignored("build/lib/x.py", pats) and bi.ignored("bench/results/r.json", pats)
    assert not bi.ignored("src/build.py", pats) and not bi.ignored("bench/run.py", pats)


def test_manifest_entry_counts_only_with_matching_hash_and_tarball(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    cache = tmp_path / "cache"
    (cache / "images").mkdir(parents=True)
    image = _image(ctx, BASE="{base}")
    spec = bi.Spec(base_repo="srl.local/base", suite="bookworm", images=[image])
    digest = bi.input_hash(image, ctx, {"BASE": "srl.local/base:k"})
    tar = cache / "images" / "x.tar"
    entry = {"name": "x", "ref": image.ref, "tar": str(tar), "input_hash": digest, "image_id": "sha256:1"}
    (cache / "images" / "manifest.json").write_text(json.dumps([entry]))
    assert bi.plan(spec, cache, "srl.local/base:k")[0].current is None  # no tarball yet
    tar.write_bytes(b"tar")
    assert bi.plan(spec, cache, "srl.local/base:k")[0].current == bi.Entry(**entry)
    assert bi.plan(spec, cache, "srl.local/base:other")[0].current is None  # the base changed


def test_every_e2e_image_has_its_dockerfile_and_copied_files() -> None:
    spec = bi.load_spec()
    assert {i.name for i in spec.images} == {"runtime", "operator", "redis", "ferretdb"}
    for image in spec.images:
        assert image.dockerfile.is_file(), image.name
        for src in bi.copy_sources(image.dockerfile):
            assert src in image.stage or (image.context / src).exists(), (image.name, src)
