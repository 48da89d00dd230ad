"""Bad input files and documents: exit 2 with one line naming the file or field, never a traceback
or a hang (issue 9, items 3-6)."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import yaml

from srl_runtime.cli import EXIT_INVALID, main
from srl_runtime.config.load import InvalidExperiment, load_experiment, parse_experiment

pytestmark = pytest.mark.unit

BASE = {
    "apiVersion": "srl.dev/v1alpha1",
    "kind": "RLExperiment",
    "metadata": {"name": "bad"},
    "spec": {"environment": {"id": "CartPole-v1"}, "stop": {"envFrames": 100}},
}
GOOD = yaml.safe_dump(BASE)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == EXIT_INVALID, f"exit {code}: {err}"
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, f"expected one line, got:\n{err}"
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"


# --------------------------------------------------------------------------- item 3: unreadable files

UNREADABLE = {
    "binary": (bytes(range(256)) * 4, "not UTF-8"),
    "utf16": (GOOD.encode("utf-16"), "not UTF-8"),
    "latin1": (("# caf\u00e9\n" + GOOD).encode("latin-1"), "not UTF-8"),
    "utf16-no-bom": (GOOD.encode("utf-16-le"), "NUL byte"),
    "deep-nesting": (("a: " + "[" * 5000 + "]" * 5000 + "\n").encode(), "nested more than"),
    "deep-block-nesting": ("".join(f"{'  ' * i}k{i}:\n" for i in range(200)).encode(), "nested more than"),
    "too-big": (b"# " + b"x" * (2 * 1024 * 1024) + b"\n" + GOOD.encode(), "bytes"),
    "two-documents": ((GOOD + "---\n" + GOOD).encode(), "YAML"),
}


@pytest.mark.parametrize("case", sorted(UNREADABLE))
@pytest.mark.parametrize("command", ["validate", "run"])
def test_unreadable_file_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str) -> None:
    data, problem = UNREADABLE[case]
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(data)
    code, err = _cli(capsys, command, str(path), *(["--quiet", "--run-dir", str(tmp_path / "run")] if command == "run" else []))
    _one_line_error(code, err, str(path), problem)


def test_directory_given_as_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(capsys, "validate", str(tmp_path))
    _one_line_error(code, err, str(tmp_path), "is a directory")


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(capsys, "validate", str(tmp_path / "nope.yaml"))
    _one_line_error(code, err, "nope.yaml", "no such file")


# --------------------------------------------------------------------------- item 4: alias bombs


def _bomb(where: str) -> str:
    levels = "\n".join(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10))
    return (
        "apiVersion: srl.dev/v1alpha1\nkind: RLExperiment\n"
        "x-anchors:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + levels + "\n"
        + ("metadata: {name: bomb, labels: {a: *l9}}\n" if where == "labels" else "metadata: {name: bomb}\n")
        + "spec:\n  environment:\n    id: CartPole-v1\n"
        + ("    kwargs: {payload: *l9}\n" if where == "kwargs" else "")
        + "  stop: {envFrames: 100}\n"
    )  # fmt: skip


@pytest.mark.parametrize("where", ["kwargs", "labels"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_alias_bomb_is_refused_at_load(tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, command: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(where))
    started = time.monotonic()
    code, err = _cli(capsys, command, str(path), *(["--quiet", "--run-dir", str(tmp_path / "run")] if command == "run" else []))
    _one_line_error(code, err, str(path), "expands to more than")
    assert not (tmp_path / "run").exists(), "run started before the document was refused"
    assert time.monotonic() - started < 60, "refusing took as long as expanding"


def test_many_aliases_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "aliases.yaml"
    doc = copy.deepcopy(BASE)
    path.write_text(yaml.safe_dump(doc) + "x-anchor: &a 1\nx-uses: [" + ", ".join(["*a"] * 1000) + "]\n")
    with pytest.raises(InvalidExperiment, match="more than .* YAML aliases"):
        load_experiment(path)


def test_a_few_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text(
        "apiVersion: srl.dev/v1alpha1\nkind: RLExperiment\nmetadata: {name: ok}\n"
        "spec:\n  environment: {id: CartPole-v1}\n"
        "  actors: &role {torchThreads: 2}\n  trainers: {<<: *role, batchSize: 8}\n  stop: {envFrames: 100}\n"
    )
    exp = load_experiment(path)
    assert exp.spec.trainers.torch_threads == 2 and exp.spec.trainers.batch_size == 8


# --------------------------------------------------------------------------- item 5: validation holes


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    return path


def test_snake_case_keys_are_unknown_fields_as_on_the_api_server() -> None:
    doc = copy.deepcopy(BASE)
    doc["spec"]["trainers"] = {"batch_size": 4}
    with pytest.raises(InvalidExperiment) as info:
        parse_experiment(doc)
    assert info.value.problems == ["spec.trainers.batch_size: unknown field (documents use camelCase: batchSize)"]


def test_duplicate_keys_are_refused_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, GOOD.replace("spec:\n", "spec:\n  seed: 1\n  seed: 2\n"))
    code, err = _cli(capsys, "validate", str(path))
    _one_line_error(code, err, "spec.seed: duplicate key")


@pytest.mark.parametrize(
    "path,value,expected",
    [
        ("algorithm.ppo.learningRate", ".inf", "spec.algorithm.ppo.learningRate: must be a finite number"),
        ("stop.targetMeanReturn", ".nan", "spec.stop.targetMeanReturn: must be a finite number"),
        ("stop.wallSeconds", ".inf", "spec.stop.wallSeconds: must be a finite number"),
        ("seed", str(2**63), "spec.seed: must fit in a 64-bit integer"),
        ("stop.envFrames", str(2**70), "spec.stop.envFrames: must fit in a 64-bit integer"),
        ("environment.kwargs", "{gravity: .inf}", "spec.environment.kwargs: must be a finite number (at gravity)"),
    ],
)
def test_numbers_json_cannot_hold_are_refused(tmp_path: Path, path: str, value: str, expected: str) -> None:
    doc = copy.deepcopy(BASE)
    node = doc["spec"]
    *parents, last = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = "__VALUE__"
    file = _write(tmp_path, yaml.safe_dump(doc).replace("__VALUE__", value))
    with pytest.raises(InvalidExperiment) as info:
        load_experiment(file)
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


ENV_CASES = [
    ({"id": "CartPol-v1"}, "spec.environment.id: 'CartPol-v1' is not registered with gymnasium", "Did you mean"),
    ({"id": "CartPole-v9"}, "spec.environment.id: 'CartPole-v9' is not registered", "v1"),
    ({"id": "no_such_module_xyz:Thing-v0"}, "spec.environment.id: module 'no_such_module_xyz' failed to import",
     "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    ({"entryPoint": "no_such_module_xyz:Env"}, "spec.environment.entryPoint: module 'no_such_module_xyz' failed to import",
     "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    ({"entryPoint": "json:NoSuchEnv"}, "spec.environment.entryPoint: module 'json' has no attribute 'NoSuchEnv'", ""),
]  # fmt: skip


@pytest.mark.parametrize("env,expected,detail", ENV_CASES, ids=[str(e) for e, _, _ in ENV_CASES])
def test_environment_that_cannot_be_made_fails_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], env: dict, expected: str, detail: str
) -> None:
    doc = copy.deepcopy(BASE)
    doc["spec"]["environment"] = env
    path = _write(tmp_path, yaml.safe_dump(doc))
    code, err = _cli(capsys, "validate", str(path))
    _one_line_error(code, err, expected, detail)


def test_registered_id_whose_module_fails_to_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gymnasium as gym

    gym.register("SrlBrokenEntryPoint-v0", entry_point="no_such_module_xyz.envs:Env")
    try:
        doc = copy.deepcopy(BASE)
        doc["spec"]["environment"] = {"id": "SrlBrokenEntryPoint-v0"}
        code, err = _cli(capsys, "validate", str(_write(tmp_path, yaml.safe_dump(doc))))
    finally:
        gym.registry.pop("SrlBrokenEntryPoint-v0", None)
    _one_line_error(code, err, "spec.environment.id: 'SrlBrokenEntryPoint-v0' is registered, but its entry point",
                    "failed to import: ModuleNotFoundError")  # fmt: skip


def test_valid_document_still_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(_write(tmp_path, GOOD))])
    assert code == 0, capsys.readouterr().err


# --------------------------------------------------------------------------- item 6: run dirs


def test_run_refuses_to_reuse_a_previous_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "params" / "versions").mkdir(parents=True)
    (run_dir / "metrics.csv").write_text("wall_seconds\n1\n")
    code, err = _cli(capsys, "run", str(_write(tmp_path, GOOD)), "--quiet", "--run-dir", str(run_dir))
    _one_line_error(code, err, str(run_dir), "--resume", "--overwrite")
    assert (run_dir / "metrics.csv").read_text() == "wall_seconds\n1\n", "the previous run was touched"
    assert (run_dir / "params" / "versions").is_dir()


def test_overwrite_and_resume_are_exclusive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", str(_write(tmp_path, GOOD)), "--resume", "--overwrite"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_prepare_run_dir_clears_only_with_overwrite(tmp_path: Path) -> None:
    from srl_runtime.launcher.local import RunDirInUse, prepare_run_dir

    (tmp_path / "params").mkdir()
    with pytest.raises(RunDirInUse):
        prepare_run_dir(tmp_path, resume=False)
    prepare_run_dir(tmp_path, resume=True)
    assert (tmp_path / "params").exists()
    prepare_run_dir(tmp_path, resume=False, overwrite=True)
    assert not (tmp_path / "params").exists()
