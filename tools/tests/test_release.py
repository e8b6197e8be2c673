"""Tests of tools/release.py, each on a temporary copy of the tree (never the real one)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "release.py"
IGNORE = shutil.ignore_patterns(
    "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "*.egg-info"
)


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pulsar_release_tool", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


release = _load_tool()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of packages/ and the root pyproject.toml, the files the tool reads."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(REPO / "packages", root / "packages", ignore=IGNORE)
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the tool as a subprocess on ``root``."""
    return subprocess.run(
        [sys.executable, str(TOOL), "--root", str(root), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def version_of(root: Path) -> str:
    version = release.tree_version(release.load_packages(root))
    assert version
    return version


def next_version(version: str, part: int = 1) -> str:
    numbers = list(release.parse_version(version))
    numbers[part] += 1
    numbers[part + 1 :] = [0] * (2 - part)
    return ".".join(map(str, numbers))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_fails(root: Path, *fragments: str) -> str:
    result = run(root, "check")
    assert result.returncode != 0, result.stdout
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


# ---------------------------------------------------------------------------------------- check


def test_check_passes_on_the_real_tree(tree: Path) -> None:
    result = run(tree, "check")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert version_of(tree) in result.stdout


def test_check_names_a_package_whose_version_drifts(tree: Path) -> None:
    version = version_of(tree)
    drifted = next_version(version, 2)
    edit(
        tree / "packages/pulsar-rpc/pyproject.toml",
        f'version = "{version}"',
        f'version = "{drifted}"',
    )
    assert_fails(tree, "pulsar-rpc", drifted, "differs")


def test_check_names_a_drifting_pulsar_version(tree: Path) -> None:
    version = version_of(tree)
    drifted = next_version(version, 2)
    edit(
        tree / "packages/pulsar-core/src/pulsar/__init__.py",
        f'__version__ = "{version}"',
        f'__version__ = "{drifted}"',
    )
    assert_fails(tree, "pulsar.__version__", drifted)


@pytest.mark.parametrize("spec", [">={v}", "=={next}", "~={v}", ""])
def test_check_names_an_inexact_pin(tree: Path, spec: str) -> None:
    version = version_of(tree)
    pin = "pulsar-core" + spec.format(v=version, next=next_version(version, 2))
    edit(tree / "packages/pulsar-wsgi/pyproject.toml", f'"pulsar-core=={version}"', f'"{pin}"')
    assert_fails(tree, "pulsar-wsgi", repr(pin), f"pulsar-core=={version}")


def test_check_names_an_inexact_pin_on_a_sibling(tree: Path) -> None:
    version = version_of(tree)
    edit(tree / "packages/pulsar-rpc/pyproject.toml", f'"pulsar-wsgi=={version}"', '"pulsar-wsgi"')
    assert_fails(tree, "pulsar-rpc", "'pulsar-wsgi'", f"pulsar-wsgi=={version}")


def test_check_names_a_changelog_without_unreleased(tree: Path) -> None:
    edit(tree / "packages/pulsar-tasks/CHANGELOG.md", "## Unreleased", "## Next")
    assert_fails(tree, "pulsar-tasks: CHANGELOG.md", "## Unreleased")


def test_check_wants_unreleased_first(tree: Path) -> None:
    edit(
        tree / "packages/pulsar-tasks/CHANGELOG.md",
        "## Unreleased",
        "## 0.0.1 \u2014 2024-01-01\n\n- old\n\n## Unreleased",
    )
    assert_fails(tree, "pulsar-tasks: CHANGELOG.md", "first '## ' section")


MALFORMED = ["## 0.0.1", "## 0.0.1 - 2024-01-01", "## v0.0.1 \u2014 2024-01-01"]


@pytest.mark.parametrize("heading", [*MALFORMED, "## 0.0.1 \u2014 2024-13-01"])
def test_check_names_a_malformed_release_section(tree: Path, heading: str) -> None:
    changelog = tree / "packages/pulsar-shell/CHANGELOG.md"
    changelog.write_text(changelog.read_text() + f"\n{heading}\n\n- old entry\n")
    assert_fails(tree, "pulsar-shell: CHANGELOG.md", repr(heading))


def test_check_names_a_release_section_newer_than_the_version(tree: Path) -> None:
    newer = next_version(version_of(tree))
    changelog = tree / "packages/pulsar-shell/CHANGELOG.md"
    changelog.write_text(changelog.read_text() + f"\n## {newer} \u2014 2024-02-01\n\n- b\n")
    assert_fails(tree, "pulsar-shell: CHANGELOG.md", f"section for {newer} is newer")


def test_check_accepts_dated_release_sections(tree: Path) -> None:
    changelog = tree / "packages/pulsar-shell/CHANGELOG.md"
    changelog.write_text(
        changelog.read_text()
        + "\n## 0.0.2 \u2014 2024-02-01\n\n- b\n\n## 0.0.1 \u2014 2024-01-01\n"
    )
    assert run(tree, "check").returncode == 0


@pytest.mark.parametrize(
    ("relpath", "fragment"),
    [
        ("src/pulsar/__init__.py", "ships src/pulsar/__init__.py"),
        ("src/pulsar/apps/__init__.py", "ships src/pulsar/apps/__init__.py"),
        ("src/pulsar/helpers.py", "ships src/pulsar/helpers.py outside src/pulsar/apps/wsgi/"),
        ("src/pulsar/apps/rpc/__init__.py", "ships src/pulsar/apps/rpc/__init__.py outside"),
    ],
)
def test_check_enforces_the_namespace_rule_on_siblings(
    tree: Path, relpath: str, fragment: str
) -> None:
    target = tree / "packages/pulsar-wsgi" / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("")
    assert_fails(tree, f"pulsar-wsgi: {fragment}")


def test_check_forbids_pulsar_apps_init_in_core(tree: Path) -> None:
    target = tree / "packages/pulsar-core/src/pulsar/apps/__init__.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("")
    assert_fails(tree, "pulsar-core: ships src/pulsar/apps/__init__.py")


def test_check_allows_core_apps_socket(tree: Path) -> None:
    socket = tree / "packages/pulsar-core/src/pulsar/apps/socket"
    socket.mkdir(parents=True, exist_ok=True)
    (socket / "__init__.py").write_text("")
    assert run(tree, "check").returncode == 0


def test_check_wants_the_extend_path_line_in_core(tree: Path) -> None:
    init = tree / "packages/pulsar-core/src/pulsar/__init__.py"
    init.write_text(init.read_text().replace(release.NAMESPACE_LINE, ""))
    assert_fails(tree, "pulsar-core", "must start with __path__")


@pytest.mark.parametrize(
    ("relpath", "fragment"),
    [
        ("README.md", "missing README.md"),
        ("CHANGELOG.md", "missing CHANGELOG.md"),
        ("tests", "missing tests/"),
        ("src/pulsar/apps/tasks/py.typed", "missing src/pulsar/apps/tasks/py.typed"),
    ],
)
def test_check_names_missing_files(tree: Path, relpath: str, fragment: str) -> None:
    target = tree / "packages/pulsar-tasks" / relpath
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    assert_fails(tree, f"pulsar-tasks: {fragment}")


def test_check_wants_a_changelog_url(tree: Path) -> None:
    edit(tree / "packages/pulsar-test/pyproject.toml", "Changelog = ", "History = ")
    assert_fails(tree, "pulsar-test", "[project.urls] Changelog")


def test_check_lists_every_problem(tree: Path) -> None:
    version = version_of(tree)
    edit(tree / "packages/pulsar-rpc/pyproject.toml", f'version = "{version}"', 'version = "9.9.9"')
    edit(tree / "packages/pulsar-tasks/CHANGELOG.md", "## Unreleased", "## Later")
    (tree / "packages/pulsar-shell/src/pulsar/__init__.py").write_text("")
    stderr = assert_fails(tree, "pulsar-rpc", "pulsar-tasks", "pulsar-shell")
    assert "3 problem(s)" in stderr


# ----------------------------------------------------------------------------------------- bump


def test_bump_updates_everything_consistently(tree: Path) -> None:
    old = version_of(tree)
    new = next_version(old)
    before = snapshot(tree)
    result = run(tree, "bump", new, "--date", "2030-05-06")
    assert result.returncode == 0, result.stderr
    assert "check: ok" in result.stdout
    assert version_of(tree) == new
    packages = release.load_packages(tree)
    for p in packages:
        assert p.version == new
        text = p.pyproject.read_text()
        assert f"=={old}" not in text
        if not p.is_core:
            assert f'"pulsar-core=={new}"' in text
        changelog = (p.path / "CHANGELOG.md").read_text()
        rest = changelog.split("## Unreleased\n", 1)[1]
        assert rest.startswith(f"\n## {new} \u2014 2030-05-06\n")
        old_entries = before[f"packages/{p.name}/CHANGELOG.md"].decode().split("## Unreleased\n")[1]
        assert old_entries.strip() in rest
        assert release.changelog_problems(changelog) == []
    assert release.core_version(tree) == new
    assert run(tree, "check").returncode == 0
    # Only versions and changelogs changed: everything else is byte for byte the same.
    changed = {k for k, v in snapshot(tree).items() if before.get(k) != v}
    assert changed == {
        *(f"packages/{p.name}/{f}" for p in packages for f in ("pyproject.toml", "CHANGELOG.md")),
        "packages/pulsar-core/src/pulsar/__init__.py",
    }


def test_bump_twice_leaves_a_placeholder_for_an_empty_release(tree: Path) -> None:
    first = next_version(version_of(tree))
    second = next_version(first, 2)
    assert run(tree, "bump", first).returncode == 0
    assert run(tree, "bump", second).returncode == 0
    changelog = (tree / "packages/pulsar-wsgi/CHANGELOG.md").read_text()
    today = dt.date.today().isoformat()
    assert f"## Unreleased\n\n## {second} \u2014 {today}\n\n{release.NO_CHANGES}\n" in changelog
    assert f"\n## {first} \u2014 {today}\n" in changelog
    assert run(tree, "check").returncode == 0


@pytest.mark.parametrize(
    "bad", ["1.2", "v9.0.0", "01.2.3", "9.0.0rc1", "9.0", "nine", "CURRENT", "0.0.0"]
)
def test_bump_refuses_an_invalid_or_non_increasing_version(tree: Path, bad: str) -> None:
    bad = bad.replace("CURRENT", version_of(tree))
    before = snapshot(tree)
    result = run(tree, "bump", bad)
    assert result.returncode != 0
    assert "bump: error" in result.stderr
    assert snapshot(tree) == before


def test_bump_refuses_a_tree_that_fails_check(tree: Path) -> None:
    edit(tree / "packages/pulsar-tasks/CHANGELOG.md", "## Unreleased", "## Soon")
    before = snapshot(tree)
    result = run(tree, "bump", next_version(version_of(tree)))
    assert result.returncode != 0
    assert "does not pass check" in result.stderr
    assert snapshot(tree) == before


# ----------------------------------------------------------------------------- wheel contents


def make_wheel(path: Path, name: str, version: str, files: list[str], requires: list[str]) -> Path:
    stem = f"{name.replace('-', '_')}-{version}"
    wheel = path / f"{stem}-py3-none-any.whl"
    metadata = f"Metadata-Version: 2.3\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(wheel, "w") as zf:
        for f in files:
            zf.writestr(f, "")
        zf.writestr(f"{stem}.dist-info/METADATA", metadata)
    return wheel


def package(tree: Path, name: str) -> Any:
    return next(p for p in release.load_packages(tree) if p.name == name)


APPS = {"wsgi", "rpc", "tasks", "shell", "test"}
WSGI_FILES = ["pulsar/apps/wsgi/__init__.py", "pulsar/apps/wsgi/py.typed"]


def test_wheel_check_accepts_good_wheels(tree: Path, tmp_path: Path) -> None:
    wsgi = make_wheel(tmp_path, "pulsar-wsgi", "1.0.0", WSGI_FILES, ["pulsar-core==1.0.0"])
    assert release.wheel_problems(wsgi, package(tree, "pulsar-wsgi"), APPS, "1.0.0") == []
    core_files = ["pulsar/__init__.py", "pulsar/py.typed", "pulsar/apps/socket/__init__.py"]
    core = make_wheel(tmp_path, "pulsar-core", "1.0.0", core_files, ["uvloop>=0.19; extra == 'x'"])
    assert release.wheel_problems(core, package(tree, "pulsar-core"), APPS, "1.0.0") == []


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("pulsar/__init__.py", "ships pulsar/__init__.py outside pulsar/apps/wsgi/"),
        ("pulsar/apps/__init__.py", "ships pulsar/apps/__init__.py"),
        ("pulsar/apps/rpc/__init__.py", "ships pulsar/apps/rpc/__init__.py outside"),
    ],
)
def test_wheel_check_enforces_the_namespace_rule(
    tree: Path, tmp_path: Path, extra: str, fragment: str
) -> None:
    wheel = make_wheel(
        tmp_path, "pulsar-wsgi", "1.0.0", [*WSGI_FILES, extra], ["pulsar-core==1.0.0"]
    )
    problems = release.wheel_problems(wheel, package(tree, "pulsar-wsgi"), APPS, "1.0.0")
    assert any(fragment in p for p in problems), problems


def test_wheel_check_rejects_core_shipping_pulsar_apps_init(tree: Path, tmp_path: Path) -> None:
    files = ["pulsar/__init__.py", "pulsar/py.typed", "pulsar/apps/__init__.py"]
    wheel = make_wheel(tmp_path, "pulsar-core", "1.0.0", files, [])
    problems = release.wheel_problems(wheel, package(tree, "pulsar-core"), APPS, "1.0.0")
    assert problems == [f"{wheel.name}: ships pulsar/apps/__init__.py"]


def test_wheel_check_rejects_metadata_drift(tree: Path, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "pulsar-wsgi", "1.0.1", WSGI_FILES, ["pulsar-core>=1.0.0"])
    problems = release.wheel_problems(wheel, package(tree, "pulsar-wsgi"), APPS, "1.0.0")
    assert len(problems) == 2, problems
    assert "Version '1.0.1'" in problems[0]
    assert "Requires-Dist 'pulsar-core>=1.0.0'" in problems[1]


# ------------------------------------------------------------------------------- build + smoke


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_build_and_smoke_outside_the_workspace(tree: Path) -> None:
    """Real isolated builds, twine check and a fresh venv (httptools comes from the index)."""
    version = version_of(tree)
    (tree / "dist").mkdir()
    (tree / "dist" / "stale-0.0.0.tar.gz").write_text("")  # build starts from an empty dist/
    result = run(tree, "build")
    assert result.returncode == 0, result.stdout + result.stderr
    built = sorted(f.name for f in (tree / "dist").iterdir())
    names = [p.name.replace("-", "_") for p in release.load_packages(tree)]
    assert built == sorted(
        f"{n}-{version}{suffix}" for n in names for suffix in ("-py3-none-any.whl", ".tar.gz")
    )
    assert "build: ok" in result.stdout
    result = run(tree, "smoke")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke: ok" in result.stdout
    assert "pulsar.apps.tasks is absent" in result.stdout
