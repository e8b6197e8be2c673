"""Tests of tools/rehearsal.py and of release.py's publish: the fast paths, failures first.

The whole rehearsal (builds, a real index, a venv per package, every README quick start) is a
step of its own in CI (`hatch run release-rehearsal`); here each part runs on its own, against a
real pypiserver on 127.0.0.1 where an index is involved, on a temporary copy of the tree.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "rehearsal.py"
RELEASE_TOOL = REPO / "tools" / "release.py"
IGNORE = shutil.ignore_patterns(
    "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "*.egg-info", "dist"
)


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pulsar_rehearsal_tool", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


rehearsal = _load_tool()
# The rehearsal runs on POSIX (process groups, a pseudo-terminal for pulsar-shell), as CI does.
posix_only = pytest.mark.skipif(
    sys.platform == "win32", reason="the release rehearsal runs on POSIX"
)
release = rehearsal.release  # the release module the rehearsal itself uses
ReleaseError = release.ReleaseError


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of packages/ and the root pyproject.toml, the files the tools read."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(REPO / "packages", root / "packages", ignore=IGNORE)
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def version_of(root: Path) -> str:
    version = release.tree_version(release.load_packages(root))
    assert version
    return version


def run_tool(tool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(tool), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=120,
    )


def fake_dists(root: Path, version: str) -> Path:
    """A wheel and an sdist per package, with just the metadata twine and an index read."""
    dist = root / "dist"
    dist.mkdir()
    for p in release.load_packages(root):
        stem = f"{p.name.replace('-', '_')}-{version}"
        meta = f"Metadata-Version: 2.1\nName: {p.name}\nVersion: {version}\nSummary: test\n"
        with zipfile.ZipFile(dist / f"{stem}-py3-none-any.whl", "w") as zf:
            zf.writestr(f"{stem}.dist-info/METADATA", meta)
            zf.writestr(
                f"{stem}.dist-info/WHEEL",
                "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            )
            zf.writestr(f"{stem}.dist-info/RECORD", "")
        with tarfile.open(dist / f"{stem}.tar.gz", "w:gz") as tf:
            for member, text in (("PKG-INFO", meta), ("pyproject.toml", "")):
                data = text.encode()
                info = tarfile.TarInfo(f"{stem}/{member}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return dist


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ------------------------------------------------------------------- the changelog section


def test_publish_refuses_packages_without_a_changelog_section(tree: Path) -> None:
    """The unreleased tree (only `## Unreleased`): refused before any index is contacted."""
    version = version_of(tree)
    fake_dists(tree, version)
    # port 9 (discard): nothing listens there; a refusal must not even try it
    result = run_tool(
        RELEASE_TOOL,
        "--root",
        str(tree),
        "publish",
        "--repository-url",
        "http://127.0.0.1:9/",
        "--index-url",
        "http://127.0.0.1:9/simple/",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "refusing to release" in result.stderr
    for p in release.load_packages(tree):
        assert f"{p.name}: CHANGELOG.md has no '## {version} \u2014 YYYY-MM-DD' section" in (
            result.stderr
        )
    assert "twine upload" not in result.stdout


def test_rehearsal_refuses_a_release_commit_missing_one_section(tree: Path) -> None:
    """Every changelog dated but pulsar-rpc's: the rehearsal refuses it, naming only it."""
    version = version_of(tree)
    for p in release.load_packages(tree):
        if p.name != "pulsar-rpc":
            changelog = p.path / "CHANGELOG.md"
            text = changelog.read_text(encoding="utf-8")
            changelog.write_text(
                release.bump_changelog(text, version, dt.date(2026, 1, 2)), encoding="utf-8"
            )
    result = run_tool(TOOL, "--root", str(tree))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"pulsar-rpc: CHANGELOG.md has no '## {version} \u2014 YYYY-MM-DD' section" in (
        result.stderr
    )
    assert "refusing to release" in result.stderr
    assert "pulsar-core: CHANGELOG" not in result.stderr
    assert "pypiserver" not in result.stdout  # refused before building or starting an index


def test_rehearsal_names_an_unknown_package(tree: Path) -> None:
    result = run_tool(TOOL, "--root", str(tree), "--only", "pulsar-nosuch")
    assert result.returncode == 1
    assert "rehearsal: error: no such package: pulsar-nosuch" in result.stderr
    assert "pypiserver" not in result.stdout


def test_an_unreleased_tree_is_dated_as_bump_would(tree: Path) -> None:
    version = version_of(tree)
    assert release.release_problems(tree)  # nothing dated yet
    names = [p.name for p in release.load_packages(tree)]
    assert sorted(rehearsal.date_unreleased(tree, version, dt.date(2026, 1, 2))) == sorted(names)
    assert release.release_problems(tree) == []
    assert release.check(tree) == []  # `## Unreleased` stays on top, empty
    assert rehearsal.date_unreleased(tree, version, dt.date(2026, 1, 2)) == []


# ------------------------------------------------------------------------- a real index


@pytest.fixture
def released_tree(tree: Path) -> Path:
    rehearsal.date_unreleased(tree, version_of(tree), dt.date(2026, 1, 2))
    fake_dists(tree, version_of(tree))
    return tree


@posix_only
@pytest.mark.timeout(180)
def test_publish_to_a_real_index_once_and_never_twice(released_tree: Path, tmp_path: Path) -> None:
    tree = released_tree
    version = version_of(tree)
    dist = tree / "dist"
    work = tmp_path / "index"
    work.mkdir()
    with rehearsal.LocalIndex(work) as index:
        pid = index.process.pid
        creds = index.credentials
        with pytest.raises(ReleaseError, match=r"refused the credentials for pulsar-core \(HTTP"):
            release.publish(
                tree, dist, index.upload_url, index.simple_url, env={**creds, "TWINE_PASSWORD": "x"}
            )
        uploaded = release.publish(tree, dist, index.upload_url, index.simple_url, env=creds)
        assert sorted(f.name for f in uploaded) == sorted(f.name for f in dist.iterdir())
        # pulsar-core went up first, every package after the ones it requires
        for p in release.load_packages(tree):
            assert release.index_versions(index.simple_url, p.name) == {version}
        assert release.index_versions(index.simple_url, "not-a-pulsar-package") == set()
        with pytest.raises(ReleaseError) as refused:
            release.publish(tree, dist, index.upload_url, index.simple_url, env=creds)
        assert f"0.1.0 already on {index.simple_url}" in str(refused.value).replace(
            version, "0.1.0"
        )
        assert "versions are immutable" in str(refused.value)
        assert "pulsar-core" in str(refused.value) and "pulsar-test" in str(refused.value)
        # the index itself refuses the same file (twine's error turned into the same message)
        core_files = release.release_files(tree, dist)[0][1]
        with pytest.raises(ReleaseError, match=r"pulsar-core .* versions are immutable"):
            release.twine_upload("pulsar-core", version, core_files, index.upload_url, env=creds)
    assert gone(pid)


def test_publish_needs_an_index_to_look_versions_up_in(released_tree: Path) -> None:
    dist = released_tree / "dist"
    with pytest.raises(ReleaseError, match=r"no --index-url given to look http://127\.0\.0\.1:9/"):
        release.publish(released_tree, dist, "http://127.0.0.1:9/")
    # nothing listens on port 9: an index that cannot be read refuses the release
    with pytest.raises(
        ReleaseError, match=r"cannot read http://127\.0\.0\.1:9/simple/pulsar-core/"
    ):
        release.publish(released_tree, dist, "http://127.0.0.1:9/", "http://127.0.0.1:9/simple/")


@posix_only
def test_the_index_is_stopped_when_the_rehearsal_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), rehearsal.LocalIndex(tmp_path) as index:
        pid = index.process.pid
        assert release.index_versions(index.simple_url, "pulsar-core") == set()
        raise RuntimeError("boom")
    assert gone(pid)
    assert index.process is None


def test_release_files_wants_exactly_the_release(released_tree: Path) -> None:
    tree = released_tree
    version = version_of(tree)
    dist = tree / "dist"
    files = release.release_files(tree, dist)
    assert files[0][0].name == "pulsar-core"
    (dist / "stray-0.0.1.tar.gz").write_text("")
    (dist / f"pulsar_rpc-{version}.tar.gz").unlink()
    with pytest.raises(ReleaseError) as exc:
        release.release_files(tree, dist)
    assert f"pulsar-rpc: expected one pulsar_rpc-{version} wheel and one sdist" in str(exc.value)
    assert "stray-0.0.1.tar.gz" in str(exc.value)


def test_upload_order_puts_what_a_package_requires_first(tree: Path) -> None:
    packages = release.load_packages(tree)
    order = [p.name for p in release.upload_order(packages)]
    assert order[0] == "pulsar-core"
    position = {name: i for i, name in enumerate(order)}
    names = set(position)
    for p in packages:
        for _, req in p.requirements():
            dep = release.normalize(release.REQUIREMENT_RE.match(req)["name"])
            if dep in names and dep != p.name:
                assert position[dep] < position[p.name], (dep, p.name)


# ------------------------------------------------------------------ installed distributions


def test_the_expected_pulsar_distributions_follow_requirements_not_extras() -> None:
    before = {  # pulsar-tasks requiring pulsar-rpc (today)
        "pulsar-tasks": ["pulsar-core==1.0.0", "pulsar-rpc==1.0.0", "croniter>=2.0"],
        "pulsar-rpc": ["pulsar-core==1.0.0", "pulsar-wsgi==1.0.0", "httpx>=0.27"],
        "pulsar-wsgi": ["pulsar-core==1.0.0", "httptools>=0.6"],
    }
    assert rehearsal.expected_pulsar_closure("pulsar-tasks", before) == {
        "pulsar-tasks",
        "pulsar-core",
        "pulsar-rpc",
        "pulsar-wsgi",
    }
    after = {  # ... and with pulsar-rpc moved to the extra pulsar-tasks[rpc]
        **before,
        "pulsar-tasks": [
            "pulsar-core==1.0.0",
            "croniter>=2.0",
            'pulsar-rpc==1.0.0; extra == "rpc"',
            'redis>=5.0; extra == "redis"',
        ],
    }
    assert rehearsal.expected_pulsar_closure("pulsar-tasks", after) == {
        "pulsar-tasks",
        "pulsar-core",
    }
    never = {"pulsar-core": ['pulsar-wsgi==1.0.0; sys_platform == "no-such-platform"']}
    assert rehearsal.expected_pulsar_closure("pulsar-core", never) == {"pulsar-core"}


def facts_of(dists: dict[str, tuple[str, list[str]]], prefix: str = "/venv") -> dict[str, object]:
    return {
        "prefix": prefix,
        "module_file": f"{prefix}/lib/python3/site-packages/pulsar/__init__.py",
        "pulsar_version": "1.0.0",
        "dists": {n: {"version": v, "requires": r} for n, (v, r) in dists.items()},
    }


WORKSPACE = {
    "pulsar-core": [],
    "pulsar-wsgi": ["pulsar-core==1.0.0", "httptools>=0.6"],
    "pulsar-tasks": ["pulsar-core==1.0.0", "croniter>=2.0"],
}
INDEX = "http://127.0.0.1:5000/"


def tasks_venv(**extra: tuple[str, list[str]]) -> dict[str, object]:
    return facts_of(
        {
            "pulsar-tasks": ("1.0.0", ["pulsar-core==1.0.0", "croniter>=2.0"]),
            "pulsar-core": ("1.0.0", []),
            "croniter": ("2.0.1", []),
            **extra,
        }
    )


def origins(*names: str, index: str = INDEX) -> dict[str, str]:
    return {n: f"{index}packages/{n}-1.0.0-py3-none-any.whl" for n in names}


def test_a_venv_holding_exactly_the_package_and_its_requirements_passes() -> None:
    facts = tasks_venv()
    found = origins("pulsar-tasks", "pulsar-core")
    assert (
        rehearsal.installation_problems("pulsar-tasks", "1.0.0", facts, found, INDEX, WORKSPACE)
        == []
    )


def test_a_venv_with_a_pulsar_distribution_nobody_required_fails() -> None:
    facts = tasks_venv(**{"pulsar-wsgi": ("1.0.0", ["pulsar-core==1.0.0"])})
    found = origins("pulsar-tasks", "pulsar-core", "pulsar-wsgi")
    problems = rehearsal.installation_problems(
        "pulsar-tasks", "1.0.0", facts, found, INDEX, WORKSPACE
    )
    assert problems == [
        "pulsar-tasks: installed pulsar distributions ['pulsar-core', 'pulsar-tasks', "
        "'pulsar-wsgi'], but it and what it declares are ['pulsar-core', 'pulsar-tasks']"
    ]


def test_metadata_requiring_what_the_pyproject_does_not_fails() -> None:
    facts = tasks_venv()
    found = origins("pulsar-tasks", "pulsar-core")
    workspace = {**WORKSPACE, "pulsar-tasks": ["pulsar-core==1.0.0", "pulsar-wsgi==1.0.0"]}
    problems = rehearsal.installation_problems(
        "pulsar-tasks", "1.0.0", facts, found, INDEX, workspace
    )
    assert problems == [
        "pulsar-tasks: its metadata requires ['pulsar-core', 'pulsar-tasks'], its pyproject.toml "
        "['pulsar-core', 'pulsar-tasks', 'pulsar-wsgi']"
    ]


def test_another_version_another_index_or_outside_the_venv_fails() -> None:
    facts = tasks_venv(**{"pulsar-core": ("9.0.0", [])})
    facts["pulsar_version"] = "9.0.0"
    facts["module_file"] = "/elsewhere/pulsar/__init__.py"
    found = {**origins("pulsar-tasks"), **origins("pulsar-core", index="https://pypi.org/")}
    problems = rehearsal.installation_problems(
        "pulsar-tasks", "1.0.0", facts, found, INDEX, WORKSPACE
    )
    assert problems == [
        "pulsar-tasks: versions other than 1.0.0 installed: {'pulsar-core': '9.0.0'}",
        f"pulsar-tasks: not installed from the local index {INDEX}: "
        "{'pulsar-core': 'https://pypi.org/packages/pulsar-core-1.0.0-py3-none-any.whl'}",
        "pulsar-tasks: pulsar.__version__ is '9.0.0', not '1.0.0'",
        f"pulsar-tasks: imported from /elsewhere/pulsar/__init__.py, outside the venv "
        f"{Path('/venv').resolve()}",
    ]


# -------------------------------------------------------------------- README quick starts


def test_every_package_readme_has_its_quick_start(tree: Path) -> None:
    for p in release.load_packages(tree):
        readme = (p.path / "README.md").read_text("utf-8")
        for quick in rehearsal.QUICK_STARTS[p.name]:
            section = rehearsal.readme_section(readme, quick.section)
            assert rehearsal.code_blocks(section), (p.name, quick.section)


def test_readme_sections_and_code_blocks() -> None:
    text = (
        "# T\n\n## A\n\n```python\n# ## not a heading\nx = 1\n```\n\n### A.1\n\n"
        "```bash\nls\n```\n\n## B\n\n```python\ny = 2\n```\n"
    )
    section = rehearsal.readme_section(text, "A")
    assert rehearsal.code_blocks(section, "python") == ["# ## not a heading\nx = 1\n"]
    assert rehearsal.code_blocks(section, "bash") == ["ls\n"]
    assert "y = 2" not in section
    with pytest.raises(ReleaseError, match="no section 'C'"):
        rehearsal.readme_section(text, "C")


def run_script(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "claims.py"
    script.write_text(rehearsal.run_top_level_await(code), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False, timeout=60
    )


def test_claims_in_readme_comments_are_checked(tmp_path: Path) -> None:
    code, count = rehearsal.claims_to_checks(
        "import asyncio, contextlib\n"
        "x = 1\n"
        "await asyncio.sleep(0, x + 2)  # 3\n"
        "str(x)  # '1'\n"
        "ValueError(-1, 'no', {'a': 1})  # ValueError(-1, 'no', {'a': 1})\n"
        "x  # a comment, no claim\n"
        "with contextlib.nullcontext():  # not an expression\n"
        "    pass\n"
    )
    assert count == 3
    result = run_script(tmp_path, code)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("as the README says") == 3
    code, count = rehearsal.claims_to_checks("x = 1\nx + 1  # 3\n")
    assert count == 1
    result = run_script(tmp_path, code)
    assert result.returncode != 0
    assert "README line 2: got 2, the README says 3" in result.stderr
    code, _ = rehearsal.claims_to_checks("KeyError('a')  # ValueError('a')\n")
    result = run_script(tmp_path, code)
    assert "README line 1: got KeyError('a'), the README says ValueError('a')" in result.stderr


_SHORT_DIRS: list[str] = []


@pytest.fixture(autouse=True)
def _remove_short_dirs() -> Iterator[None]:
    yield
    while _SHORT_DIRS:
        shutil.rmtree(_SHORT_DIRS.pop(), ignore_errors=True)


def workspace_venv(tmp_path: Path) -> object:
    """The test environment as the venv: the workspace packages are installed in it.

    Its work folder (and so the ``TMPDIR`` of what it runs) is a short one of its own, not under
    ``tmp_path``: pytest-xdist's per-worker ``tmp_path`` is deep enough that the sockets
    multiprocessing's forkserver makes in ``TMPDIR`` would pass the 108-byte unix socket limit
    (as the rehearsal itself does, in a short temporary folder). ``tmp_path`` names it."""
    import tempfile

    work = Path(tempfile.mkdtemp(prefix=f"rh-{tmp_path.name[:12]}-", dir="/tmp"))
    _SHORT_DIRS.append(str(work))
    return rehearsal.Venv(Path(sys.prefix), work)


@posix_only
@pytest.mark.timeout(120)
def test_a_quick_start_printing_otherwise_fails_with_what_it_printed(tmp_path: Path) -> None:
    readme = (REPO / "packages" / "pulsar-core" / "README.md").read_text(encoding="utf-8")
    section = rehearsal.readme_section(readme, "Example")
    assert "# hello pulsar from greeter" in section
    wrong = section.replace("# hello pulsar from greeter", "# hello nobody")
    with pytest.raises(ReleaseError) as exc:
        rehearsal._quick_start_core(workspace_venv(tmp_path), wrong)
    assert "printed ['hello pulsar from greeter']" in str(exc.value)
    assert "the README says 'hello nobody'" in str(exc.value)


@posix_only
@pytest.mark.timeout(120)
def test_a_transcript_with_another_exit_status_fails(tmp_path: Path) -> None:
    section = (
        "```console\n$ cat script.py\nimport sys\nprint('hi')\nsys.exit(2)\n"
        f"$ {sys.executable} script.py; echo $?\nhi\n3\n```\n"
    )
    with pytest.raises(ReleaseError) as exc:
        rehearsal._quick_start_shell(workspace_venv(tmp_path), section)
    assert "exit status 2 and output ['hi']; the README says 3 and ['hi']" in str(exc.value)
    ok = section.replace("hi\n3\n```", "hi\n2\n```")
    assert rehearsal._quick_start_shell(workspace_venv(tmp_path / "ok"), ok) == [
        f"`{sys.executable} script.py` printed ['hi'] and exited 2"
    ]


@posix_only
@pytest.mark.timeout(120)
def test_a_console_session_printing_otherwise_fails_and_leaves_the_shell_cleanly(
    tmp_path: Path,
) -> None:
    readme = (REPO / "packages" / "pulsar-shell" / "README.md").read_text(encoding="utf-8")
    section = rehearsal.readme_section(readme, "The console")
    assert "'pong'" in section
    venv = workspace_venv(tmp_path)
    venv.version = version_of(REPO)
    with pytest.raises(ReleaseError) as exc:
        rehearsal._quick_start_console(venv, section.replace("'pong'", "'pang'"))
    message = str(exc.value)
    assert "printed [\"'pong'\"], the README shows [\"'pang'\"]" in message
    # the shell was left with Ctrl-D, not killed: its arbiter removed its mailbox folder
    assert list((venv.work / "tmp").iterdir()) == []
    lines = rehearsal._quick_start_console(venv, section)
    assert "Ctrl-D stopped the arbiter, exit status 0" in lines
