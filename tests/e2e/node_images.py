"""Images for the e2e node: the images helper's manifest, and loading tarballs into containerd.

scripts/build-images.sh writes `${SRL_E2E_CACHE:-~/.cache/srl-e2e}/images/manifest.json`: a list of
{"name", "ref", "tar", "input_hash", "image_id"}. scripts/install-e2e-tools.sh writes the pause
image (registry.k8s.io/pause:3.10) with its ID beside it. The node's containerd root persists in the
cache, so an image is imported only when containerd lacks it or holds another ID: the ID we
imported is kept as a label on the containerd image.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin (and so the kubelet) uses
ID_LABEL = "srl.dev/e2e-image-id"  # on each imported image: the image ID it was imported with
PAUSE_REF = "registry.k8s.io/pause:3.10"  # containerd's sandbox_image (node.py)


class ImageError(RuntimeError):
    """A manifest entry is unusable or an import failed; the message names the image."""


@dataclass(frozen=True)
class Image:
    """One image tarball the node must hold."""

    name: str  # short name (runtime, operator, redis, pause, ...)
    ref: str  # the reference pods use, e.g. srl.local/srl-runtime:e2e
    tar: Path  # docker-archive tarball (`docker save` format)
    image_id: str  # config digest; changes whenever the image does


def e2e_cache() -> Path:
    return Path(os.environ.get("SRL_E2E_CACHE", Path.home() / ".cache" / "srl-e2e"))


def manifest_path() -> Path:
    return e2e_cache() / "images" / "manifest.json"


def load_manifest(path: Path | None = None) -> list[Image]:
    """The images in the manifest; [] when there is none yet. Relative tar paths are relative
    to the manifest's folder."""
    path = path or manifest_path()
    if not path.exists():
        return []
    images = []
    for i, entry in enumerate(json.loads(path.read_text())):
        try:
            tar = Path(entry["tar"])
            images.append(
                Image(
                    name=entry["name"],
                    ref=entry["ref"],
                    tar=tar if tar.is_absolute() else path.parent / tar,
                    image_id=entry["image_id"],
                )
            )
        except (KeyError, TypeError) as exc:
            raise ImageError(f"{path}: entry {i} lacks field {exc}") from exc
    return images


def manifest_ref(name: str, path: Path | None = None) -> str:
    """The ref of the manifest image called `name` (e.g. "runtime")."""
    images = load_manifest(path)
    for image in images:
        if image.name == name:
            return image.ref
    have = ", ".join(i.name for i in images) or "none"
    raise ImageError(f"no image named {name!r} in {path or manifest_path()} (have: {have})")


def pause_image(images_dir: Path) -> Image:
    """The pause image scripts/install-e2e-tools.sh made in $SRL_CACHE/images."""
    tar, id_file = images_dir / "pause.tar", images_dir / "pause.id"
    if not tar.exists() or not id_file.exists():
        raise ImageError(f"{tar} missing: run scripts/install-e2e-tools.sh")
    return Image("pause", PAUSE_REF, tar, id_file.read_text().strip())


@dataclass
class ContainerdImages:
    """Image operations on one containerd, through `ctr` on its socket."""

    socket: Path

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = ["ctr", "--address", str(self.socket), "--namespace", NAMESPACE, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ImageError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
        return proc

    def labels(self) -> dict[str, dict[str, str]]:
        """ref -> labels of every image containerd holds."""
        out = self.ctr("images", "ls").stdout.splitlines()
        result: dict[str, dict[str, str]] = {}
        for line in out[1:]:
            cols = line.split()
            if not cols:
                continue
            labels = {}
            if cols[-1] != "-":
                for pair in cols[-1].split(","):
                    key, _, value = pair.partition("=")
                    labels[key] = value
            result[cols[0]] = labels
        return result

    def ensure(self, images: list[Image], timeout: float = 900) -> dict[str, str]:
        """Import each image that is missing or has another ID; returns ref -> what happened."""
        have = self.labels()
        done: dict[str, str] = {}
        for image in images:
            if have.get(image.ref, {}).get(ID_LABEL) == image.image_id:
                done[image.ref] = "cached"
                continue
            if not image.tar.exists():
                raise ImageError(f"image {image.name}: tarball {image.tar} does not exist")
            start = time.monotonic()
            self.ctr("images", "import", str(image.tar), timeout=timeout)
            if image.ref not in self.labels():
                raise ImageError(
                    f"image {image.name}: {image.tar} imported but containerd has no {image.ref}"
                    " (the tarball's RepoTags must name it)"
                )
            self.discard_layers(image.ref)
            self.ctr("images", "label", image.ref, f"{ID_LABEL}={image.image_id}")
            done[image.ref] = f"imported in {time.monotonic() - start:.0f}s"
        return done

    def discard_layers(self, ref: str) -> None:
        """Drop the image's layer blobs once they are unpacked into snapshots (what the CRI
        plugin's discard_unpacked_layers does after a pull): containers run from the snapshots,
        and the blobs would double the disk the image takes (6 GB for the runtime image)."""
        digest = next(
            (line.split()[2] for line in self.ctr("images", "ls").stdout.splitlines()[1:]
             if line.split() and line.split()[0] == ref),
            None,
        )  # fmt: skip
        if digest is None:
            return
        manifest = json.loads(self.ctr("content", "get", digest).stdout)
        layers = [layer["digest"] for layer in manifest.get("layers", [])]
        if layers:
            self.ctr("content", "rm", *layers)
