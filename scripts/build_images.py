"""Build the e2e tier's images (images/e2e-images.json) with a local dockerd; skip unchanged ones.

scripts/build-images.sh installs the packages, checks disk, owns dockerd and calls this twice:
  build_images.py plan     exit 0 when every image's tarball is current (prints the summary),
                           exit 3 when something must be built (no docker needed for this)
  build_images.py build    build what changed (DOCKER_HOST must point at a running dockerd)

An image's input hash covers its spec entry (ref, target, resolved build args, which name the base
image by its cache key), its Dockerfile and every file its COPY/ADD lines copy from the build
context (minus .dockerignore). Output per image: $CACHE/images/<name>.tar (`docker save`) and one
entry in $CACHE/images/manifest.json: {"name", "ref", "tar", "input_hash", "image_id"}.
Standard library only: it runs before the project's venv matters.
"""

from __future__ import annotations

import filecmp
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC_PATH = REPO / "images" / "e2e-images.json"
ROOTFS_SCRIPT = REPO / "images" / "base" / "rootfs.sh"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
EXIT_NEEDS_BUILD = 3

# `docker import --change` lines for the base: what python:3.11-slim sets that a rootfs cannot.
BASE_CHANGES = (
    "ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
    "ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
    'CMD ["/bin/bash"]',
)


def cache_dir() -> Path:
    return Path(os.environ.get("SRL_E2E_CACHE") or Path.home() / ".cache" / "srl-e2e")


def test_cache_dir() -> Path:
    """Where scripts/install-test-servers.sh puts its binaries (same default as there)."""
    return Path(os.environ.get("SRL_CACHE") or Path.home() / ".cache" / "srl-test")


def fail(msg: str) -> None:
    print(f"build-images: {msg}", file=sys.stderr)
    raise SystemExit(2)


# ---------------------------------------------------------------- spec


@dataclass(frozen=True)
class ImageSpec:
    """One image of images/e2e-images.json."""

    name: str  # short name: tarball images/<name>.tar and manifest key
    ref: str  # the ref pods use (srl.local/...:e2e)
    dockerfile: Path  # absolute path of the Dockerfile
    context: Path  # build context as in the repo (absolute)
    target: str | None  # --target, or None for the last stage
    build_args: dict[str, str]  # --build-arg values; "{base}" stands for the base image ref
    stage: dict[str, Path] = field(default_factory=dict)  # extra context files: name -> source


@dataclass(frozen=True)
class Spec:
    """images/e2e-images.json."""

    base_repo: str  # base image repository; the tag is the base's cache key
    suite: str  # Debian suite the base is bootstrapped from
    images: list[ImageSpec]  # in build order


def load_spec(path: Path = SPEC_PATH) -> Spec:
    raw = json.loads(path.read_text())
    placeholders = {"test_cache": str(test_cache_dir())}
    images = []
    for item in raw["images"]:
        images.append(
            ImageSpec(
                name=item["name"],
                ref=item["ref"],
                dockerfile=REPO / item["dockerfile"],
                context=REPO / item["context"],
                target=item.get("target"),
                build_args=dict(item.get("build_args", {})),
                stage={k: Path(v.format(**placeholders)) for k, v in item.get("stage", {}).items()},
            )
        )
    return Spec(base_repo=raw["base"]["ref"], suite=raw["base"]["suite"], images=images)


# ---------------------------------------------------------------- base image


def debian_mirror(suite: str) -> str:
    """The Debian mirror this host's apt uses for `suite` (SRL_DEBIAN_MIRROR overrides)."""
    if os.environ.get("SRL_DEBIAN_MIRROR"):
        return os.environ["SRL_DEBIAN_MIRROR"]
    entries: list[tuple[list[str], list[str]]] = []  # (uris, suites)
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in Path(path).read_text().split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.lstrip().startswith("#"):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
            if fields.get("types", "deb").split()[0] == "deb":
                entries.append((fields.get("uris", "").split(), fields.get("suites", "").split()))
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        if os.path.exists(path):
            for line in Path(path).read_text().splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb":
                    entries.append(([words[1]], [words[2]]))
    for uris, suites in entries:
        if suite in suites and uris:
            return uris[0]
    fail(f"no apt source for Debian {suite} on this host; set SRL_DEBIAN_MIRROR=http://.../debian")
    raise AssertionError


def base_key(spec: Spec, mirror: str) -> str:
    """Cache key of the base: the rootfs recipe, its mirror, the host's CA bundle, the import changes."""
    h = hashlib.sha256()
    h.update(ROOTFS_SCRIPT.read_bytes())
    h.update(json.dumps([spec.suite, mirror, BASE_CHANGES]).encode())
    h.update(HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.exists() else b"")
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- input hashing


def dockerignore_patterns(context: Path) -> list[re.Pattern[str]]:
    """.dockerignore as regexes; supports `*`, `?`, `**` (no `!` exceptions: refused)."""
    path = context / ".dockerignore"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            fail(f"{path}: `!` exceptions are not supported by the input hash")
        pat = os.path.normpath(line.lstrip("/"))
        rx, i = "", 0
        while i < len(pat):
            if pat.startswith("**/", i):
                rx, i = rx + "(?:.*/)?", i + 3
            elif pat.startswith("**", i):
                rx, i = rx + ".*", i + 2
            elif pat[i] == "*":
                rx, i = rx + "[^/]*", i + 1
            elif pat[i] == "?":
                rx, i = rx + "[^/]", i + 1
            else:
                rx, i = rx + re.escape(pat[i]), i + 1
        out.append(re.compile(rx + r"\Z"))
    return out


def ignored(rel: str, patterns: list[re.Pattern[str]]) -> bool:
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(p.match(prefix) for p in patterns for prefix in prefixes)


def copy_sources(dockerfile: Path) -> list[str]:
    """Context paths (possibly globs) that the Dockerfile's COPY/ADD lines read (not --from=)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    sources: list[str] = []
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if len(words) < 2 or words[0].upper() not in ("COPY", "ADD"):
            continue
        rest = words[1].strip()
        args = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        flags = [a for a in args if a.startswith("--")]
        paths = [a for a in args if not a.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            continue
        for src in paths[:-1]:
            if "://" in src:
                fail(f"{dockerfile}: ADD of a URL cannot be hashed: {src}")
            sources.append(src)
    return sources


def hash_tree(h: hashlib._Hash, context: Path, sources: list[str], where: str) -> None:
    patterns = dockerignore_patterns(context)
    files: set[str] = set()
    for src in sources:
        matches = glob.glob(str(context / src.lstrip("/")))
        if not matches:
            fail(f"{where}: COPY source {src!r} does not exist in {context}")
        for match in matches:
            if os.path.isdir(match) and not os.path.islink(match):
                for dirpath, dirnames, filenames in os.walk(match):
                    reldir = os.path.relpath(dirpath, context)
                    dirnames[:] = [d for d in dirnames if not ignored(f"{reldir}/{d}", patterns)]
                    files.update(f"{reldir}/{f}" for f in filenames)
            else:
                files.add(os.path.relpath(match, context))
    for rel in sorted(f for f in files if not ignored(os.path.normpath(f), patterns)):
        path = context / rel
        h.update(rel.encode() + b"\0")
        if path.is_symlink():
            h.update(b"link:" + os.readlink(path).encode())
        else:
            h.update(b"x" if os.access(path, os.X_OK) else b"-")
            h.update(path.read_bytes())
        h.update(b"\0")


def input_hash(image: ImageSpec, context: Path, build_args: dict[str, str]) -> str:
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {"ref": image.ref, "target": image.target, "args": build_args}, sort_keys=True
        ).encode()
    )
    h.update(image.dockerfile.read_bytes())
    hash_tree(h, context, copy_sources(image.dockerfile), str(image.dockerfile))
    return h.hexdigest()[:16]


def staged_context(image: ImageSpec, cache: Path) -> Path:
    """The build context: the repo's, or a copy of it with the `stage` files added."""
    if not image.stage:
        return image.context
    ctx = cache / "context" / image.name
    ctx.mkdir(parents=True, exist_ok=True)
    want: dict[str, Path] = {p.name: p for p in image.context.iterdir() if p.is_file()}
    for name, src in image.stage.items():
        if not src.is_file():
            fail(f"{image.name}: {src} is missing (scripts/install-test-servers.sh builds it)")
        want[name] = src
    for name, src in want.items():
        dst = ctx / name
        if not dst.exists() or not filecmp.cmp(src, dst, shallow=True):
            shutil.copy2(src, dst)
    for extra in ctx.iterdir():
        if extra.name not in want:
            extra.unlink()
    return ctx


# ---------------------------------------------------------------- manifest


@dataclass(frozen=True)
class Entry:
    """One line of $CACHE/images/manifest.json."""

    name: str  # image name in images/e2e-images.json
    ref: str  # image ref inside the tarball
    tar: str  # absolute path of the `docker save` tarball
    input_hash: str  # hash of the inputs this tarball was built from
    image_id: str  # docker image id (sha256:...)


def read_manifest(path: Path) -> dict[str, Entry]:
    if not path.exists():
        return {}
    try:
        return {e["name"]: Entry(**e) for e in json.loads(path.read_text())}
    except (ValueError, TypeError, KeyError):
        return {}


def write_manifest(path: Path, entries: list[Entry]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([e.__dict__ for e in entries], indent=2) + "\n")
    tmp.replace(path)


# ---------------------------------------------------------------- docker


def docker(*args: str, log: Path | None = None) -> str:
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    if log is None:
        proc = subprocess.run(["docker", *args], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            fail(f"docker {' '.join(args[:2])} failed: {proc.stderr.strip()[-2000:]}")
        return proc.stdout.strip()
    with log.open("w") as out:
        proc = subprocess.run(["docker", *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-40:])
        fail(f"docker {args[0]} failed (full log: {log}):\n{tail}")
    return ""


def image_id(ref: str) -> str | None:
    proc = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", ref], capture_output=True, text=True
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_base(spec: Spec, mirror: str, key: str, cache: Path) -> str:
    """The base image ref, imported from the cached rootfs tarball (debootstrapped when missing)."""
    ref = f"{spec.base_repo}:{key}"
    if image_id(ref):
        return ref
    base_dir = cache / "base"
    base_dir.mkdir(parents=True, exist_ok=True)
    tar = base_dir / f"rootfs-{key}.tar"
    if not tar.exists():
        print(
            f"build-images: debootstrapping {spec.suite} from {mirror} (base {key})",
            file=sys.stderr,
        )
        t0 = time.monotonic()
        logs = cache / "logs"
        logs.mkdir(exist_ok=True)
        with (logs / "base.log").open("w") as out:
            rc = subprocess.run(
                [str(ROOTFS_SCRIPT), spec.suite, mirror, str(tar)],
                stdout=out,
                stderr=subprocess.STDOUT,
            ).returncode
        if rc != 0:
            fail(
                f"base rootfs failed (log: {logs / 'base.log'}):\n{(logs / 'base.log').read_text()[-3000:]}"
            )
        print(
            f"build-images: base rootfs {time.monotonic() - t0:.0f} s, {tar.stat().st_size / 1e6:.0f} MB",
            file=sys.stderr,
        )
        for old in base_dir.glob("rootfs-*.tar"):
            if old != tar:
                old.unlink()
    changes = [a for c in BASE_CHANGES for a in ("--change", c)]
    docker("import", *changes, str(tar), ref)
    for old in docker(
        "images", "--format", "{{.Repository}}:{{.Tag}}", spec.base_repo
    ).splitlines():
        if old != ref:  # an earlier base; images built on it keep its layers until pruned
            subprocess.run(["docker", "rmi", old], capture_output=True)
    return ref


# ---------------------------------------------------------------- plan / build


@dataclass
class Planned:
    """An image with its resolved inputs and whether its tarball is current."""

    image: ImageSpec  # the spec entry
    context: Path  # build context (staged when the spec has `stage`)
    build_args: dict[str, str]  # with the base ref substituted
    input_hash: str  # hash of all of the above
    current: Entry | None  # manifest entry when its tarball matches input_hash


def plan(spec: Spec, cache: Path, base_ref: str) -> list[Planned]:
    manifest = read_manifest(cache / "images" / "manifest.json")
    out = []
    for image in spec.images:
        ctx = staged_context(image, cache)
        args = {k: v.format(base=base_ref) for k, v in image.build_args.items()}
        digest = input_hash(image, ctx, args)
        entry = manifest.get(image.name)
        ok = (
            entry is not None
            and entry.input_hash == digest
            and entry.ref == image.ref
            and Path(entry.tar).is_file()
        )
        out.append(Planned(image, ctx, args, digest, entry if ok else None))
    return out


def human(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def summary_line(name: str, state: str, seconds: float, tar: str, ref: str) -> str:
    size = human(os.path.getsize(tar)) if os.path.exists(tar) else "?"
    return f"build-images: {name:<9} {state:<7} {seconds:6.1f} s  {size:>9}  {ref}"


def build(spec: Spec, cache: Path, mirror: str, key: str) -> None:
    images_dir = cache / "images"
    logs = cache / "logs"
    images_dir.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    base_ref = ensure_base(spec, mirror, key, cache)
    old = read_manifest(images_dir / "manifest.json")
    entries: list[Entry] = []
    for p in plan(spec, cache, base_ref):
        t0 = time.monotonic()
        tar = images_dir / f"{p.image.name}.tar"
        if p.current is not None:
            entries.append(p.current)
            print(summary_line(p.image.name, "cached", 0.0, p.current.tar, p.image.ref), flush=True)
            continue
        print(
            f"build-images: building {p.image.name} (log: {logs / (p.image.name + '.log')})",
            file=sys.stderr,
            flush=True,
        )
        cmd = ["build", "--network", "host", "-f", str(p.image.dockerfile), "-t", p.image.ref]
        if p.image.target:
            cmd += ["--target", p.image.target]
        for k, v in sorted(p.build_args.items()):
            cmd += ["--build-arg", f"{k}={v}"]
        docker(*cmd, str(p.context), log=logs / f"{p.image.name}.log")
        new_id = image_id(p.image.ref)
        if new_id is None:
            fail(f"{p.image.ref} missing after its build")
        prev = old.get(p.image.name)
        if (
            prev is None
            or prev.image_id != new_id
            or not Path(prev.tar).is_file()
            or prev.ref != p.image.ref
        ):
            part = tar.with_suffix(".tar.part")
            docker("save", "-o", str(part), p.image.ref)
            part.chmod(0o644)  # docker save writes 0600; the node's importer only reads it
            part.replace(tar)
        entries.append(Entry(p.image.name, p.image.ref, str(tar), p.input_hash, str(new_id)))
        # Written after every image: an interrupted run keeps what it finished.
        done = {e.name for e in entries}
        rest = [old[i.name] for i in spec.images if i.name not in done and i.name in old]
        write_manifest(images_dir / "manifest.json", entries + rest)
        print(
            summary_line(p.image.name, "built", time.monotonic() - t0, str(tar), p.image.ref),
            flush=True,
        )
    write_manifest(images_dir / "manifest.json", entries)
    wanted = {f"{i.name}.tar" for i in spec.images}
    for stale in images_dir.glob("*.tar"):
        if stale.name not in wanted:
            stale.unlink()
    # Old builds of our refs (now untagged) and their layers: keep the data root bounded.
    subprocess.run(["docker", "image", "prune", "-f"], capture_output=True)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("plan", "build"):
        print(__doc__, file=sys.stderr)
        return 2
    spec = load_spec()
    cache = cache_dir()
    mirror = debian_mirror(spec.suite)
    key = base_key(spec, mirror)
    if argv[0] == "plan":
        planned = plan(spec, cache, f"{spec.base_repo}:{key}")
        if any(p.current is None for p in planned):
            return EXIT_NEEDS_BUILD
        for p in planned:
            assert p.current is not None
            print(summary_line(p.image.name, "cached", 0.0, p.current.tar, p.image.ref))
        return 0
    build(spec, cache, mirror, key)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
