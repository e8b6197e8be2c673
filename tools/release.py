#!/usr/bin/env python3
"""Release tooling for the pulsar monorepo: ``check``, ``bump``, ``build``, ``smoke``, ``publish``.

How it works: every package lives in ``packages/<name>/`` with a static ``version`` in its
``pyproject.toml``. All packages share one version; pulsar-core also states it as
``pulsar.__version__`` and every pin between workspace packages is exact (``==<version>``).

* ``check`` reads the tree (never writes) and lists every problem: version drift, inexact pins,
  malformed changelogs, files breaking the namespace rule (no distribution ships
  ``pulsar/apps/__init__.py``; a sibling ships only ``src/pulsar/apps/<app>/``), missing files.
* ``bump X.Y.Z`` edits the text of those files in place (keeping their formatting), dates the
  ``## Unreleased`` section of every changelog, and re-runs ``check``.
* ``build`` builds an sdist and (from that sdist) a wheel per package into ``dist/`` with
  ``python -m build`` in an isolated environment (only the build backend comes from the index),
  runs ``twine check --strict`` and verifies each wheel's file list and metadata.
* ``smoke`` installs the pulsar-core and pulsar-wsgi wheels into a fresh virtual environment in
  a temporary directory outside the workspace and imports them there.
* ``publish`` uploads ``dist/`` with ``twine upload --repository-url`` (PyPI by default, with
  trusted publishing in the release workflow), each package after the ones it requires. It
  refuses a package whose CHANGELOG has no dated section for the version and a version the index
  already has (versions are immutable), before uploading anything. ``tools/rehearsal.py`` runs
  the same upload against a local index and installs every package from it by name.

Every command works relative to ``--root`` (default: the repository holding this file), so tests
can run it on a temporary copy of the tree. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import email.parser
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Package",
    "ReleaseError",
    "bump",
    "check",
    "load_packages",
    "index_versions",
    "main",
    "publish",
    "release_files",
    "release_problems",
    "sdist_problems",
    "twine_upload",
    "upload_order",
    "wheel_problems",
]

DEFAULT_ROOT = Path(__file__).resolve().parent.parent
CORE = "pulsar-core"
CORE_INIT = Path("src/pulsar/__init__.py")
NAMESPACE_LINE = '__path__ = __import__("pkgutil").extend_path(__path__, __name__)'
BUILD_BACKENDS = frozenset({"hatchling"})
UNRELEASED = "## Unreleased"
DASH = "\u2014"  # the em dash of "## X.Y.Z — YYYY-MM-DD"
NO_CHANGES = "- No user-visible changes; released in step with the other pulsar packages."

VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
INIT_VERSION_RE = re.compile(r"""^__version__\s*=\s*(["'])([^"']*)\1""", re.M)
RELEASE_HEADING_RE = re.compile(rf"^## (\S+) {DASH} (\S+)$")
REQUIREMENT_RE = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*"
    r"(?:\[(?P<extras>[^\]]*)\])?\s*(?P<spec>[^;]*?)\s*(?:;(?P<marker>.*))?$"
)
IGNORED_PARTS = frozenset({"__pycache__", ".DS_Store", ".mypy_cache", ".pytest_cache"})


class ReleaseError(Exception):
    """A command cannot go on (bad arguments, unreadable tree, failed build step)."""


def normalize(name: str) -> str:
    """Return the PEP 503 normalized form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_version(text: str) -> tuple[int, int, int]:
    """Parse ``X.Y.Z`` (no leading zeros, no suffix) into a tuple of ints.

    Raises:
        ReleaseError: when ``text`` is not of that form.
    """
    m = VERSION_RE.match(text)
    if not m:
        raise ReleaseError(f"invalid version {text!r}: expected X.Y.Z (e.g. 0.2.0)")
    major, minor, patch = (int(g) for g in m.groups())
    return major, minor, patch


@dataclass(frozen=True)
class Package:
    """One workspace member: its directory and parsed ``pyproject.toml``."""

    name: str
    path: Path
    meta: dict[str, Any]

    @property
    def is_core(self) -> bool:
        """True for pulsar-core, the package that owns ``pulsar/__init__.py``."""
        return self.name == CORE

    @property
    def app(self) -> str:
        """The ``pulsar.apps`` sub-package a sibling ships (``pulsar-wsgi`` -> ``wsgi``)."""
        return self.name.removeprefix("pulsar-")

    @property
    def pyproject(self) -> Path:
        """Path of the package's ``pyproject.toml``."""
        return self.path / "pyproject.toml"

    @property
    def project(self) -> dict[str, Any]:
        """The ``[project]`` table."""
        project = self.meta.get("project", {})
        return project if isinstance(project, dict) else {}

    @property
    def version(self) -> str | None:
        """The static ``project.version``, or None when missing."""
        version = self.project.get("version")
        return version if isinstance(version, str) else None

    def requirements(self) -> list[tuple[str, str]]:
        """Every requirement string with where it is declared, e.g. ``("dependencies", "x>=1")``."""
        reqs: list[tuple[str, str]] = [
            ("dependencies", r) for r in self.project.get("dependencies", []) or []
        ]
        for extra, items in (self.project.get("optional-dependencies", {}) or {}).items():
            reqs.extend((f"optional-dependencies.{extra}", r) for r in items or [])
        return reqs


def load_packages(root: Path) -> list[Package]:
    """Load every ``packages/*/pyproject.toml`` under ``root``, pulsar-core first.

    Raises:
        ReleaseError: when there is no package, no pulsar-core, or a pyproject does not parse.
    """
    packages: list[Package] = []
    for pyproject in sorted((root / "packages").glob("*/pyproject.toml")):
        try:
            meta = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ReleaseError(f"{pyproject.relative_to(root)}: cannot parse: {exc}") from exc
        name = meta.get("project", {}).get("name") or pyproject.parent.name
        packages.append(Package(normalize(str(name)), pyproject.parent, meta))
    if not packages:
        raise ReleaseError(f"no packages/*/pyproject.toml under {root}")
    if not any(p.is_core for p in packages):
        raise ReleaseError(f"no {CORE} package under {root / 'packages'}")
    packages.sort(key=lambda p: (not p.is_core, p.name))
    return packages


def core_version(root: Path) -> str | None:
    """Return ``pulsar.__version__`` as written in pulsar-core's ``__init__.py`` (or None)."""
    init = root / "packages" / CORE / CORE_INIT
    try:
        m = INIT_VERSION_RE.search(init.read_text(encoding="utf-8"))
    except OSError:
        return None
    return m.group(2) if m else None


def tree_version(packages: Sequence[Package]) -> str | None:
    """The shared version: the most common pyproject version, pulsar-core's on a tie."""
    counts = Counter(p.version for p in packages if p.version)
    if not counts:
        return None
    core = next(p for p in packages if p.is_core)
    best = max(counts.values())
    if core.version and counts[core.version] == best:
        return core.version
    return next(v for v, n in counts.items() if n == best)


# ---------------------------------------------------------------------------------------- check


def _check_versions(root: Path, packages: Sequence[Package]) -> list[str]:
    problems: list[str] = []
    version = tree_version(packages)
    for p in packages:
        if p.version is None:
            problems.append(f"{p.name}: pyproject.toml has no static [project] version")
        elif p.version != version:
            problems.append(
                f"{p.name}: version {p.version} differs from the shared version {version}"
            )
        elif not VERSION_RE.match(p.version):
            problems.append(f"{p.name}: version {p.version!r} is not of the form X.Y.Z")
        if p.path.name != p.name:
            problems.append(
                f"{p.name}: lives in packages/{p.path.name}/, expected packages/{p.name}/"
            )
    init_version = core_version(root)
    if init_version is None:
        problems.append(f'{CORE}: {CORE_INIT} has no __version__ = "X.Y.Z" line')
    elif init_version != version:
        problems.append(
            f"{CORE}: pulsar.__version__ {init_version} in {CORE_INIT} differs from the shared "
            f"version {version}"
        )
    return problems


def _check_pins(packages: Sequence[Package]) -> list[str]:
    problems: list[str] = []
    version = tree_version(packages)
    names = {p.name for p in packages}
    for p in packages:
        pins_core = False
        for where, req in p.requirements():
            m = REQUIREMENT_RE.match(req)
            if not m:
                problems.append(f"{p.name}: cannot parse requirement {req!r} in {where}")
                continue
            dep = normalize(m["name"])
            if dep not in names:
                continue
            pins_core |= dep == CORE and where == "dependencies" and not m["marker"]
            spec = re.sub(r"\s+", "", m["spec"])
            if spec != f"=={version}":
                problems.append(f"{p.name}: pin {req!r} in {where} is not exactly {dep}=={version}")
        if not p.is_core and not pins_core:
            problems.append(f"{p.name}: dependencies lack the exact pin {CORE}=={version}")
        build_requires = p.meta.get("build-system", {}).get("requires", [])
        for req in build_requires:
            m = REQUIREMENT_RE.match(req)
            if not m or normalize(m["name"]) not in BUILD_BACKENDS:
                # Isolated builds fetch build requirements from the index: only the backend may
                # come from there, never a workspace package.
                problems.append(
                    f"{p.name}: build-system.requires {req!r} is not the build backend "
                    f"({', '.join(sorted(BUILD_BACKENDS))})"
                )
    return problems


def changelog_problems(text: str) -> list[str]:
    """Return what is wrong with a CHANGELOG.md's ``## `` section headings (empty when valid).

    The first ``## `` section must be ``## Unreleased``; every later one ``## X.Y.Z — YYYY-MM-DD``
    with a real date, versions strictly decreasing down the file.
    """
    headings = [line.rstrip() for line in text.splitlines() if line.startswith("## ")]
    if not headings or headings[0] != UNRELEASED:
        found = repr(headings[0]) if headings else "no '## ' section"
        return [f"first '## ' section must be '{UNRELEASED}' (found {found})"]
    problems: list[str] = []
    previous: tuple[int, int, int] | None = None
    for heading in headings[1:]:
        m = RELEASE_HEADING_RE.match(heading)
        if not m:
            problems.append(f"section {heading!r} is not of the form '## X.Y.Z {DASH} YYYY-MM-DD'")
            continue
        try:
            release = parse_version(m[1])
            dt.date.fromisoformat(m[2])
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", m[2]):
                raise ValueError(m[2])
        except (ReleaseError, ValueError):
            problems.append(f"section {heading!r} is not of the form '## X.Y.Z {DASH} YYYY-MM-DD'")
            continue
        if previous is not None and release >= previous:
            problems.append(f"section {heading!r} is not older than the section above it")
        previous = release
    return problems


def _check_changelog(p: Package, version: str | None) -> list[str]:
    changelog = p.path / "CHANGELOG.md"
    if not changelog.is_file():
        return []  # reported by _check_files
    text = changelog.read_text(encoding="utf-8")
    problems = changelog_problems(text)
    released = [m[1] for line in text.splitlines() if (m := RELEASE_HEADING_RE.match(line))]
    current = parse_version(version) if version and VERSION_RE.match(version) else None
    if not problems and released and current and parse_version(released[0]) > current:
        problems.append(f"section for {released[0]} is newer than the version {version}")
    return [f"{p.name}: CHANGELOG.md: {msg}" for msg in problems]


def _tree_files(top: Path) -> list[Path]:
    """Files under ``top`` (relative to it), skipping caches that no build ships."""
    if not top.is_dir():
        return []
    return sorted(
        f.relative_to(top)
        for f in top.rglob("*")
        if f.is_file()
        and not IGNORED_PARTS.intersection(f.relative_to(top).parts)
        and f.suffix not in {".pyc", ".pyo"}
    )


def _check_core_init(p: Package) -> list[str]:
    init = p.path / CORE_INIT
    try:
        tree = ast.parse(init.read_text(encoding="utf-8"))
    except (OSError, SyntaxError) as exc:
        return [f"{p.name}: cannot read {CORE_INIT}: {exc}"]
    expected = ast.dump(ast.parse(NAMESPACE_LINE).body[0])
    for i, node in enumerate(tree.body):
        is_docstring = (
            i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        )
        if is_docstring or (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
            continue
        if ast.dump(node) == expected:
            return []
        break
    return [f"{p.name}: {CORE_INIT} must start with {NAMESPACE_LINE}"]


def _check_layout(p: Package, apps: set[str]) -> list[str]:
    problems: list[str] = []
    pulsar = p.path / "src" / "pulsar"
    files = _tree_files(pulsar)
    if (pulsar / "apps" / "__init__.py").exists():
        problems.append(
            f"{p.name}: ships src/pulsar/apps/__init__.py (no distribution may: pulsar.apps is "
            "an implicit namespace package)"
        )
    if p.is_core:
        problems.extend(_check_core_init(p))
        if not (pulsar / "py.typed").is_file():
            problems.append(f"{p.name}: missing src/pulsar/py.typed")
        for f in files:
            if len(f.parts) > 2 and f.parts[0] == "apps" and f.parts[1] in apps:
                problems.append(
                    f"{p.name}: ships src/pulsar/{f.as_posix()}, "
                    f"which belongs to pulsar-{f.parts[1]}"
                )
        return problems
    if (pulsar / "__init__.py").exists():
        problems.append(
            f"{p.name}: ships src/pulsar/__init__.py (only {CORE} may; a sibling ships only "
            f"src/pulsar/apps/{p.app}/)"
        )
    for f in files:
        if f.as_posix() in {"__init__.py", "apps/__init__.py"}:
            continue  # reported above
        if f.parts[:2] != ("apps", p.app) or len(f.parts) < 3:
            problems.append(
                f"{p.name}: ships src/pulsar/{f.as_posix()} outside src/pulsar/apps/{p.app}/"
            )
    app_dir = pulsar / "apps" / p.app
    if not (app_dir / "__init__.py").is_file():
        problems.append(f"{p.name}: missing src/pulsar/apps/{p.app}/__init__.py")
    if not (app_dir / "py.typed").is_file():
        problems.append(f"{p.name}: missing src/pulsar/apps/{p.app}/py.typed")
    return problems


def _check_files(p: Package) -> list[str]:
    problems = [
        f"{p.name}: missing {name}"
        for name in ("README.md", "CHANGELOG.md")
        if not (p.path / name).is_file()
    ]
    if not (p.path / "tests").is_dir():
        problems.append(f"{p.name}: missing tests/ directory")
    urls = p.project.get("urls", {}) or {}
    if not any(k.lower() == "changelog" for k in urls):
        problems.append(f"{p.name}: pyproject.toml lacks [project.urls] Changelog")
    return problems


def check(root: Path) -> list[str]:
    """Return every release-consistency problem of the tree at ``root`` (empty when all is well).

    Raises:
        ReleaseError: when the packages cannot be loaded at all.
    """
    packages = load_packages(root)
    apps = {p.app for p in packages if not p.is_core}
    problems = _check_versions(root, packages) + _check_pins(packages)
    version = tree_version(packages)
    for p in packages:
        problems += _check_changelog(p, version) + _check_layout(p, apps) + _check_files(p)
    return problems


def cmd_check(root: Path) -> int:
    """Print the problems of the tree and return 1, or print an ok summary and return 0."""
    problems = check(root)
    if problems:
        for problem in problems:
            print(f"check: {problem}", file=sys.stderr)
        print(f"check: {len(problems)} problem(s) found", file=sys.stderr)
        return 1
    packages = load_packages(root)
    print(
        f"check: ok: {len(packages)} packages at version {tree_version(packages)}, exact pins, "
        "changelogs and namespace layout valid"
    )
    return 0


# ----------------------------------------------------------------------------------------- bump


def _project_span(text: str) -> tuple[int, int]:
    m = re.search(r"^\[project\][ \t]*$", text, re.M)
    if not m:
        raise ReleaseError("no [project] table")
    end = re.search(r"^\[", text[m.end() :], re.M)
    return m.end(), m.end() + end.start() if end else len(text)


def _bump_pyproject(text: str, names: Sequence[str], version: str) -> str:
    start, end = _project_span(text)
    section, n = re.subn(
        r'^(version\s*=\s*)(["\'])[^"\']*\2',
        rf"\g<1>\g<2>{version}\g<2>",
        text[start:end],
        count=1,
        flags=re.M,
    )
    if n != 1:
        raise ReleaseError("no version = ... line in [project]")
    text = text[:start] + section + text[end:]
    for name in names:
        pattern = r"[-_.]+".join(re.escape(part) for part in name.split("-"))
        text = re.sub(
            rf"""(?i)(["'])({pattern})(\s*(?:\[[^\]]*\])?\s*==\s*)[^"';,\s]+""",
            rf"\g<1>\g<2>\g<3>{version}",
            text,
        )
    return text


def bump_changelog(text: str, version: str, date: dt.date) -> str:
    """Date the ``## Unreleased`` section of a changelog as ``## version — date``.

    A new, empty ``## Unreleased`` section goes on top; the old entries stay under the new
    release heading (a placeholder line when there were none).

    Raises:
        ReleaseError: when the changelog has no ``## Unreleased`` line.
    """
    lines = text.splitlines(keepends=True)
    try:
        i = next(i for i, line in enumerate(lines) if line.rstrip() == UNRELEASED)
    except StopIteration:
        raise ReleaseError(f"no '{UNRELEASED}' section") from None
    j = next((k for k in range(i + 1, len(lines)) if lines[k].startswith("## ")), len(lines))
    body = "".join(lines[i + 1 : j]).strip("\n")
    if not body.strip():
        body = NO_CHANGES
    section = f"{UNRELEASED}\n\n## {version} {DASH} {date.isoformat()}\n\n{body}\n"
    if j < len(lines):
        section += "\n"
    return "".join(lines[:i]) + section + "".join(lines[j:])


def bump(root: Path, version: str, date: dt.date | None = None) -> list[Path]:
    """Set ``version`` everywhere in the tree at ``root`` and date every changelog.

    Refuses (raising :class:`ReleaseError`, before touching any file) an invalid version, one not
    greater than the current one, or a tree that does not pass :func:`check`.

    Returns:
        The files written, relative to ``root``.
    """
    new = parse_version(version)
    problems = check(root)
    if problems:
        raise ReleaseError(
            "the tree does not pass check; fix it first:\n  " + "\n  ".join(problems)
        )
    packages = load_packages(root)
    current = tree_version(packages)
    assert current is not None  # check() passed
    if new <= parse_version(current):
        raise ReleaseError(f"version {version} is not greater than the current {current}")
    date = date or dt.date.today()
    names = [p.name for p in packages]
    edits: dict[Path, str] = {}
    for p in packages:
        try:
            edits[p.pyproject] = _bump_pyproject(
                p.pyproject.read_text(encoding="utf-8"), names, version
            )
            changelog = p.path / "CHANGELOG.md"
            edits[changelog] = bump_changelog(changelog.read_text(encoding="utf-8"), version, date)
        except ReleaseError as exc:
            raise ReleaseError(f"{p.name}: {exc}") from None
    init = root / "packages" / CORE / CORE_INIT
    edits[init] = INIT_VERSION_RE.sub(
        lambda m: f"__version__ = {m[1]}{version}{m[1]}", init.read_text(encoding="utf-8"), 1
    )
    for path, text in edits.items():  # every edit computed first: all files or none
        path.write_text(text, encoding="utf-8")
    return [path.relative_to(root) for path in edits]


def cmd_bump(root: Path, version: str, date: dt.date | None) -> int:
    """Run :func:`bump`, print the files written, then re-run check."""
    written = bump(root, version, date)
    for path in written:
        print(f"bump: wrote {path.as_posix()}")
    print(f"bump: version {version}")
    return cmd_check(root)


# ---------------------------------------------------------------------------------------- build


def _dist_stem(p: Package, version: str) -> str:
    return f"{p.name.replace('-', '_')}-{version}"


def wheel_problems(wheel: Path, package: Package, apps: set[str], version: str) -> list[str]:
    """Check a built wheel's file list against the namespace rule and its metadata.

    pulsar-core must ship ``pulsar/__init__.py`` and ``pulsar/py.typed`` and no
    ``pulsar/apps/__init__.py`` nor any sibling's app; a sibling ships only
    ``pulsar/apps/<app>/`` (with ``__init__.py`` and ``py.typed``). ``Version`` must be
    ``version`` and every ``Requires-Dist`` on a workspace package (names in ``apps``, plus
    pulsar-core) exactly ``==version``.
    """
    tag = wheel.name
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        dist_info = [n for n in names if n.split("/")[0].endswith(".dist-info")]
        files = [n for n in names if n not in dist_info]
        metadata_name = next((n for n in dist_info if n.endswith(".dist-info/METADATA")), None)
        metadata = zf.read(metadata_name).decode() if metadata_name else ""
    problems: list[str] = []
    if "pulsar/apps/__init__.py" in files:
        problems.append(f"{tag}: ships pulsar/apps/__init__.py")
    if package.is_core:
        for required in ("pulsar/__init__.py", "pulsar/py.typed"):
            if required not in files:
                problems.append(f"{tag}: lacks {required}")
        problems.extend(
            f"{tag}: ships {f}, which belongs to pulsar-{f.split('/')[2]}"
            for f in files
            if f.startswith("pulsar/apps/") and f.count("/") >= 3 and f.split("/")[2] in apps
        )
    else:
        prefix = f"pulsar/apps/{package.app}/"
        problems.extend(
            f"{tag}: ships {f} outside {prefix}"
            for f in files
            if not f.startswith(prefix) and f != "pulsar/apps/__init__.py"
        )
        for required in ("__init__.py", "py.typed"):
            if prefix + required not in files:
                problems.append(f"{tag}: lacks {prefix}{required}")
    if not metadata:
        return [*problems, f"{tag}: no .dist-info/METADATA"]
    msg = email.parser.Parser().parsestr(metadata, headersonly=True)
    if normalize(msg.get("Name", "")) != package.name:
        problems.append(f"{tag}: metadata Name {msg.get('Name')!r} is not {package.name}")
    if msg.get("Version") != version:
        problems.append(f"{tag}: metadata Version {msg.get('Version')!r} is not {version}")
    workspace = {CORE} | {f"pulsar-{app}" for app in apps}
    for req in msg.get_all("Requires-Dist") or []:
        m = REQUIREMENT_RE.match(req)
        if m and normalize(m["name"]) in workspace:
            spec = re.sub(r"[\s()]+", "", m["spec"])
            if spec != f"=={version}":
                problems.append(f"{tag}: Requires-Dist {req!r} is not exactly =={version}")
    return problems


def sdist_problems(sdist: Path, package: Package) -> list[str]:
    """Check that an sdist holds pyproject.toml, README.md, CHANGELOG.md, src/ and tests/."""
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    problems = [
        f"{sdist.name}: lacks {name}"
        for name in ("pyproject.toml", "README.md", "CHANGELOG.md", "PKG-INFO")
        if name not in members
    ]
    for top in ("src/", "tests/"):
        if not any(m.startswith(top) for m in members):
            problems.append(f"{sdist.name}: lacks {top}")
    return problems


def _run(
    cmd: Sequence[str | Path], *, cwd: Path, quiet: bool = False, shown: str | None = None
) -> None:
    """Run ``cmd`` in ``cwd`` with no stdin; raise :class:`ReleaseError` when it fails."""
    shown = shown or " ".join(str(c) for c in cmd)
    print(f"$ {shown}", flush=True)
    result = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=quiet,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout or "") + (result.stderr or "") if quiet else ""
        raise ReleaseError(f"command failed with exit code {result.returncode}: {shown}\n{output}")


def build(root: Path) -> list[Path]:
    """Build every package's sdist and wheel into ``root/dist`` and verify them.

    ``dist/`` is emptied first. Each package is built with ``python -m build`` (sdist, then the
    wheel from that sdist) in an isolated environment whose only download is the build backend
    (``check`` guarantees ``build-system.requires`` names nothing else); uv installs it when on
    PATH. Then ``twine check --strict`` and :func:`wheel_problems` / :func:`sdist_problems`.

    Returns:
        The built files.

    Raises:
        ReleaseError: on a failed build, a failed twine check or a wheel breaking the rules.
    """
    packages = load_packages(root)
    version = tree_version(packages)
    if version is None:
        raise ReleaseError("no package has a version")
    apps = {p.app for p in packages if not p.is_core}
    dist = root / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    dist.mkdir()
    installer = ["--installer", "uv"] if shutil.which("uv") else []
    for p in packages:
        cmd: list[str | Path] = [
            sys.executable,
            "-m",
            "build",
            *installer,
            "--outdir",
            dist,
            p.path,
        ]
        _run(cmd, cwd=root, quiet=True)
    built = sorted(f for f in dist.iterdir() if f.is_file())
    _run([sys.executable, "-m", "twine", "--no-color", "check", "--strict", *built], cwd=root)
    problems: list[str] = []
    for p in packages:
        stem = _dist_stem(p, version)
        wheels = [f for f in built if f.name.startswith(f"{stem}-") and f.suffix == ".whl"]
        sdists = [f for f in built if f.name == f"{stem}.tar.gz"]
        if len(wheels) != 1 or len(sdists) != 1:
            problems.append(f"{p.name}: expected one {stem} wheel and one sdist in dist/")
            continue
        problems += wheel_problems(wheels[0], p, apps, version)
        problems += sdist_problems(sdists[0], p)
    if problems:
        raise ReleaseError("built distributions break the rules:\n  " + "\n  ".join(problems))
    return built


def cmd_build(root: Path) -> int:
    """Run :func:`build` and print what was built."""
    built = build(root)
    for f in built:
        print(f"build: {f.relative_to(root).as_posix()}")
    print(f"build: ok: {len(built)} files; twine check and namespace rule passed")
    return 0


# ---------------------------------------------------------------------------------------- smoke

SMOKE_CODE = r"""
import importlib.metadata as md
import sys
from pathlib import Path

expected = sys.argv[1]
prefix = Path(sys.prefix).resolve()

import pulsar
from pulsar.apps import wsgi
import pulsar.apps

for mod in (pulsar, wsgi):
    where = Path(mod.__file__).resolve()
    if not where.is_relative_to(prefix):
        sys.exit(f"{mod.__name__} imported from {where}, outside the venv {prefix}")
if getattr(pulsar.apps, "__file__", None) is not None:
    sys.exit(f"pulsar.apps is not an implicit namespace package: {pulsar.apps.__file__}")
try:
    import pulsar.apps.tasks
except ImportError:
    pass
else:
    sys.exit("import pulsar.apps.tasks worked although pulsar-tasks is not installed")

versions = {
    "pulsar.__version__": pulsar.__version__,
    "pulsar-core metadata": md.version("pulsar-core"),
    "pulsar-wsgi metadata": md.version("pulsar-wsgi"),
}
if hasattr(wsgi, "__version__"):
    versions["pulsar.apps.wsgi.__version__"] = wsgi.__version__
wrong = {k: v for k, v in versions.items() if v != expected}
if wrong:
    sys.exit(f"versions differ from {expected}: {wrong}")
ours = sorted(
    d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].startswith("pulsar")
)
if ours != ["pulsar-core", "pulsar-wsgi"]:
    sys.exit(f"unexpected pulsar distributions installed: {ours}")
print(f"smoke: ok: pulsar {pulsar.__version__} and pulsar.apps.wsgi import from {prefix}; "
      "pulsar.apps.tasks is absent")
"""


def _base_python() -> str:
    """The interpreter behind the current (possibly virtual) environment."""
    base = getattr(sys, "_base_executable", None)
    return base if base and Path(base).exists() else sys.executable


def smoke(root: Path, *, keep: bool = False) -> None:
    """Install the pulsar-core and pulsar-wsgi wheels into a fresh venv outside ``root``.

    Builds first when ``dist/`` lacks those wheels at the current version. In the venv, with
    ``python -I`` from the temporary directory, checks that ``from pulsar.apps import wsgi``
    works, ``import pulsar.apps.tasks`` raises ImportError and every version matches.
    Dependencies (httptools) come from the index. The venv is removed unless ``keep``.

    Raises:
        ReleaseError: when any step fails.
    """
    packages = load_packages(root)
    version = tree_version(packages)
    if version is None:
        raise ReleaseError("no package has a version")
    by_name = {p.name: p for p in packages}
    if "pulsar-wsgi" not in by_name:
        raise ReleaseError("no pulsar-wsgi package to smoke-test")
    dist = root / "dist"

    def wheels() -> list[Path]:
        found = []
        for name in (CORE, "pulsar-wsgi"):
            stem = _dist_stem(by_name[name], version)
            found.extend(sorted(dist.glob(f"{stem}-*.whl"))[:1])
        return found

    if len(wheels()) != 2:
        print(f"smoke: no {CORE}/pulsar-wsgi {version} wheels in dist/: building first")
        build(root)
    selected = wheels()
    if len(selected) != 2:
        raise ReleaseError(f"build did not produce the {CORE} and pulsar-wsgi wheels")
    tmp = Path(tempfile.mkdtemp(prefix="pulsar-smoke-")).resolve()
    try:
        if tmp.is_relative_to(root.resolve()):
            raise ReleaseError(f"temporary directory {tmp} is inside the workspace {root}")
        venv = tmp / "venv"
        python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        uv = shutil.which("uv")
        if uv:
            _run([uv, "venv", "--quiet", "--python", _base_python(), venv], cwd=tmp)
            _run([uv, "pip", "install", "--quiet", "--python", python, *selected], cwd=tmp)
        else:
            _run([_base_python(), "-m", "venv", venv], cwd=tmp)
            _run([python, "-m", "pip", "install", "--quiet", *selected], cwd=tmp)
        shown = f"{python} -I -c <smoke checks> {version}"
        _run([python, "-I", "-c", SMOKE_CODE, version], cwd=tmp, shown=shown)
    finally:
        if keep:
            print(f"smoke: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


# -------------------------------------------------------------------------------------- publish

PYPI_UPLOAD_URL = "https://upload.pypi.org/legacy/"
KNOWN_INDEXES = {
    PYPI_UPLOAD_URL: "https://pypi.org/simple/",
    "https://test.pypi.org/legacy/": "https://test.pypi.org/simple/",
}
DIST_FILE_RE = re.compile(r"^(?P<name>.+?)-(?P<version>\d[^-]*?)(?:-[^/]*\.whl|\.tar\.gz|\.zip)$")
HREF_RE = re.compile(r"""<a\s[^>]*href=["']([^"']+)["']""", re.I)
# PyPI: "400 File already exists"; pypiserver: "Cannot upload ... since it already exists!";
# other indexes: 409 Conflict.
ALREADY_THERE_RE = re.compile(r"already exists|HTTPError: 409\b|409 Conflict", re.I)
REFUSED_RE = re.compile(r"HTTPError: (401|403)\b")


def release_problems(root: Path) -> list[str]:
    """What stops the tree at ``root`` from being released (empty when it may be).

    Everything :func:`check` reports, plus every package whose CHANGELOG.md has no dated
    ``## X.Y.Z — YYYY-MM-DD`` section for the version being released (``bump`` writes it).
    """
    problems = check(root)
    packages = load_packages(root)
    version = tree_version(packages)
    for p in packages:
        try:
            text = (p.path / "CHANGELOG.md").read_text(encoding="utf-8")
        except OSError:
            continue  # reported by check
        sections = {m[1] for line in text.splitlines() if (m := RELEASE_HEADING_RE.match(line))}
        if version not in sections:
            problems.append(
                f"{p.name}: CHANGELOG.md has no '## {version} {DASH} YYYY-MM-DD' section: "
                f"refusing to release {version} (date the '{UNRELEASED}' section first, with "
                "`hatch run bump X.Y.Z`)"
            )
    return problems


def upload_order(packages: Sequence[Package]) -> list[Package]:
    """The packages ordered so that each comes after every workspace package it requires."""
    by_name = {p.name: p for p in packages}
    needs: dict[str, set[str]] = {}
    for p in packages:
        deps = set()
        for _, req in p.requirements():
            m = REQUIREMENT_RE.match(req)
            if m and normalize(m["name"]) in by_name and normalize(m["name"]) != p.name:
                deps.add(normalize(m["name"]))
        needs[p.name] = deps
    ordered: list[Package] = []
    done: set[str] = set()
    while len(ordered) < len(packages):
        ready = [n for n in by_name if n not in done and needs[n] <= done]
        if not ready:
            cycle = sorted(n for n in by_name if n not in done)
            raise ReleaseError(f"the workspace packages require each other in a cycle: {cycle}")
        # pulsar-core first, then alphabetical among the packages that are ready
        name = min(ready, key=lambda n: (n != CORE, n))
        ordered.append(by_name[name])
        done.add(name)
    return ordered


def release_files(root: Path, dist: Path) -> list[tuple[Package, list[Path]]]:
    """Each package (in :func:`upload_order`) with its wheel and sdist in ``dist``.

    Raises:
        ReleaseError: when a package lacks its wheel or sdist at the tree's version, or
            ``dist`` holds a file of no package at that version.
    """
    packages = load_packages(root)
    version = tree_version(packages)
    if version is None:
        raise ReleaseError("no package has a version")
    files = sorted(f for f in dist.iterdir() if f.is_file()) if dist.is_dir() else []
    taken: set[Path] = set()
    result: list[tuple[Package, list[Path]]] = []
    problems: list[str] = []
    for p in upload_order(packages):
        stem = _dist_stem(p, version)
        wheels = [f for f in files if f.name.startswith(f"{stem}-") and f.suffix == ".whl"]
        sdists = [f for f in files if f.name == f"{stem}.tar.gz"]
        if len(wheels) != 1 or len(sdists) != 1:
            problems.append(f"{p.name}: expected one {stem} wheel and one sdist in {dist}")
            continue
        result.append((p, [*wheels, *sdists]))
        taken.update([*wheels, *sdists])
    problems += [
        f"{f.name} in {dist} is no {version} package file" for f in files if f not in taken
    ]
    if problems:
        raise ReleaseError("cannot release:\n  " + "\n  ".join(problems))
    return result


def index_versions(index_url: str, name: str, *, timeout: float = 30.0) -> set[str]:
    """The versions of ``name`` that a PEP 503 simple index at ``index_url`` has files for.

    Raises:
        ReleaseError: when the index cannot be read (a 404 means no version).
    """
    import urllib.error
    import urllib.parse
    import urllib.request

    url = f"{index_url.rstrip('/')}/{normalize(name)}/"
    request = urllib.request.Request(url, headers={"Accept": "text/html"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            page = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return set()
        raise ReleaseError(f"cannot read {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ReleaseError(f"cannot read {url}: {exc}") from None
    versions = set()
    for href in HREF_RE.findall(page):
        filename = urllib.parse.unquote(href.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1])
        m = DIST_FILE_RE.match(filename)
        if m and normalize(m["name"]) == normalize(name):
            versions.add(m["version"])
    return versions


def _immutable(names: Sequence[str], version: str, where: str) -> ReleaseError:
    return ReleaseError(
        f"{', '.join(names)} {version} already on {where}: versions are immutable (an index "
        f"never takes the same version twice); bump to a new version (`hatch run bump X.Y.Z`) "
        "and release that"
    )


def publish(
    root: Path,
    dist: Path,
    repository_url: str,
    index_url: str | None = None,
    *,
    env: dict[str, str] | None = None,
) -> list[Path]:
    """Upload every package's wheel and sdist in ``dist`` with ``twine upload``.

    The same steps against PyPI (trusted publishing: twine gets a token from the CI when no
    password is set) and against the rehearsal's local index (``TWINE_USERNAME`` /
    ``TWINE_PASSWORD`` in ``env``). Refuses, before uploading anything, a tree that fails
    :func:`release_problems`, a ``dist`` that is not exactly the release's files, and a version
    that the index (``index_url``, the simple API; PyPI's for PyPI) already has. Packages go up
    in :func:`upload_order`. A refusal by the index of a file it has is reported as such.

    Returns:
        The uploaded files.

    Raises:
        ReleaseError: on any refusal or failed upload.
    """
    problems = release_problems(root)
    if problems:
        raise ReleaseError("refusing to release:\n  " + "\n  ".join(problems))
    packages = load_packages(root)
    version = tree_version(packages)
    assert version is not None  # release_problems passed
    files = release_files(root, dist)
    index_url = index_url or KNOWN_INDEXES.get(repository_url)
    if not index_url:
        raise ReleaseError(f"no --index-url given to look {repository_url}'s versions up in")
    there = [p.name for p, _ in files if version in index_versions(index_url, p.name)]
    if there:
        raise _immutable(there, version, index_url)
    uploaded: list[Path] = []
    for p, package_files in files:
        twine_upload(p.name, version, package_files, repository_url, env=env)
        uploaded.extend(package_files)
    return uploaded


def twine_upload(
    name: str,
    version: str,
    files: Sequence[Path],
    repository_url: str,
    *,
    env: dict[str, str] | None = None,
) -> None:
    """``twine upload --repository-url`` of one package's files, non-interactive.

    Raises:
        ReleaseError: naming immutability when the index refuses a file it already has
            (HTTP 409, or PyPI's 400 "File already exists"), with twine's output otherwise.
    """
    cmd = [
        sys.executable,
        "-m",
        "twine",
        "--no-color",
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        "--verbose",  # the index's own message, shown when it refuses a file
        "--repository-url",
        repository_url,
        *map(str, files),
    ]
    shown = " ".join(f.name for f in files)
    print(f"$ twine upload --repository-url {repository_url} {shown}", flush=True)
    result = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        if ALREADY_THERE_RE.search(output):
            raise _immutable([name], version, repository_url)
        if m := REFUSED_RE.search(output):
            raise ReleaseError(
                f"{repository_url} refused the credentials for {name} (HTTP {m[1]}): set "
                "TWINE_USERNAME/TWINE_PASSWORD, or use trusted publishing on PyPI"
            )
        raise ReleaseError(
            f"twine upload of {name} failed with exit code {result.returncode}:\n{output}"
        )


def cmd_publish(root: Path, dist: Path, repository_url: str, index_url: str | None) -> int:
    """Run :func:`publish` and print what was uploaded."""
    uploaded = publish(root, dist, repository_url, index_url)
    for f in uploaded:
        print(f"publish: uploaded {f.name}")
    print(f"publish: ok: {len(uploaded)} files to {repository_url}")
    return 0


# ----------------------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help="repository root holding packages/ (default: %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="fail on version drift, inexact pins, bad changelogs, layout")
    bump_p = sub.add_parser("bump", help="set a new version everywhere and date the changelogs")
    bump_p.add_argument("version", help="the new version, X.Y.Z, greater than the current one")
    bump_p.add_argument(
        "--date", type=dt.date.fromisoformat, default=None, help="release date (default: today)"
    )
    sub.add_parser("build", help="build every sdist and wheel into dist/ and verify them")
    smoke_p = sub.add_parser("smoke", help="install core + wsgi wheels in a fresh venv, import")
    smoke_p.add_argument("--keep", action="store_true", help="keep the temporary venv")
    publish_p = sub.add_parser(
        "publish", help="upload dist/ with twine (changelog section and new version required)"
    )
    publish_p.add_argument(
        "--repository-url",
        default=PYPI_UPLOAD_URL,
        help="the upload endpoint given to twine (default: %(default)s)",
    )
    publish_p.add_argument(
        "--index-url",
        default=None,
        help="its simple index, to refuse versions already there (default: PyPI's for PyPI)",
    )
    publish_p.add_argument(
        "--dist", type=Path, default=None, help="folder of the files (default: ROOT/dist)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    args = _parser().parse_args(argv)
    root: Path = args.root.resolve()
    try:
        if args.command == "check":
            return cmd_check(root)
        if args.command == "bump":
            return cmd_bump(root, args.version, args.date)
        if args.command == "build":
            return cmd_build(root)
        if args.command == "publish":
            dist = args.dist.resolve() if args.dist else root / "dist"
            return cmd_publish(root, dist, args.repository_url, args.index_url)
        smoke(root, keep=args.keep)
        return 0
    except ReleaseError as exc:
        print(f"{args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
