"""Loading image tarballs into the e2e node's containerd.

The tarballs: the images helper's manifest (tests/e2e/images.py: built_images(), entries with
name/ref/tar/image_id) and the pause image scripts/install-e2e-tools.sh writes with its ID beside
it. The node's containerd root persists in the cache, so an image is imported only when containerd
lacks it or holds another ID: the ID we imported is kept as a label on the containerd image.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin (and so the kubelet) uses
ID_LABEL = "srl.dev/e2e-image-id"  # on each imported image: the image ID it was imported with
PAUSE_REF = "registry.k8s.io/pause:3.10"  # containerd's sandbox_image (node.py)


class ImageError(RuntimeError):
    """A tarball is missing or an import failed; the message names the image."""


class ImageTarball(Protocol):
    """What the node needs of an image: images.Entry (the manifest) and PauseImage have it."""

    @property
    def name(self) -> str: ...  # short name (runtime, operator, redis, pause, ...)
    @property
    def ref(self) -> str: ...  # the reference pods use, e.g. srl.local/srl-runtime:e2e
    @property
    def tar(self) -> str: ...  # docker-archive tarball (`docker save` format)
    @property
    def image_id(self) -> str: ...  # config digest; changes whenever the image does


@dataclass(frozen=True)
class PauseImage:
    """The sandbox image (a static pause binary), made by scripts/install-e2e-tools.sh."""

    name: str
    ref: str
    tar: str
    image_id: str


def pause_image(images_dir: Path) -> PauseImage:
    """The pause image scripts/install-e2e-tools.sh made in $SRL_CACHE/images."""
    tar, id_file = images_dir / "pause.tar", images_dir / "pause.id"
    if not tar.exists() or not id_file.exists():
        raise ImageError(f"{tar} missing: run scripts/install-e2e-tools.sh")
    return PauseImage("pause", PAUSE_REF, str(tar), id_file.read_text().strip())


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

    def ensure(self, images: list[ImageTarball], timeout: float = 900) -> dict[str, str]:
        """Import each image that is missing or has another ID; returns ref -> what happened."""
        have = self.labels()
        done: dict[str, str] = {}
        for image in images:
            if have.get(image.ref, {}).get(ID_LABEL) == image.image_id:
                done[image.ref] = "cached"
                continue
            if not Path(image.tar).is_file():
                raise ImageError(f"image {image.name}: tarball {image.tar} does not exist")
            start = time.monotonic()
            self.ctr("images", "import", image.tar, timeout=timeout)
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
