"""Companion applications: what the ``dashboard`` and ``metrics`` settings add to any application.

How it works
------------
Every application has the ``dashboard`` and ``metrics`` settings (declared here in pulsar-core,
global: one per arbiter), but what serves them lives in a package above pulsar-core, which the
core never imports (the layering rule). That package declares an entry point of the group
``pulsar.companions`` (:data:`GROUP`); pulsar-dashboard's is::

    [project.entry-points."pulsar.companions"]
    dashboard = "pulsar.apps.dashboard._companion:companions"

When an :class:`~pulsar.Application` or a :class:`~pulsar.MultiApp` starts with one of those
settings set, :func:`find_companions` loads the entry point named in :data:`COMPANIONS` and
calls it as ``factory(setting, address, apps=apps, label=label)``: ``setting`` is the setting's
name, ``address`` its value (a normalised address), ``apps`` the applications that start,
``label`` the setting as the user spelled it (``--dashboard``, ``PULSAR_DASHBOARD``,
``dashboard``) for error messages. It returns the applications to run in the same arbiter
(:func:`add_companions` adds them after the user's) or raises :class:`~pulsar.ConfigError`.
All of this happens before the arbiter exists, so a missing package or a refused address is
one ``error:`` line and exit code 2, as any bad setting. An arbiter runs each companion once
(``arbiter.extra["companions"]``), whatever the number of applications added to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from ._exceptions import ConfigError

if TYPE_CHECKING:
    from ._application import Application

__all__ = ["COMPANIONS", "GROUP", "Companion", "add_companions", "find_companions", "load_factory"]

#: the entry point group of companion factories
GROUP = "pulsar.companions"


@dataclass(frozen=True, slots=True)
class Companion:
    """A setting served by a companion application: the entry point that makes it (in
    :data:`GROUP`) and the distribution to install when it is missing."""

    setting: str
    entry_point: str
    distribution: str


#: the settings served by companions, in the order their applications are added
COMPANIONS: tuple[Companion, ...] = (
    Companion("dashboard", "dashboard", "pulsar-dashboard"),
    Companion("metrics", "dashboard", "pulsar-dashboard"),
)


def load_factory(
    name: str, *, distribution: str, label: str, group: str = GROUP
) -> Callable[..., Any]:
    """The factory of the entry point ``name`` in ``group``.

    Raises:
        ConfigError: no such entry point (``<label> needs <distribution>, which is not
            installed: pip install <distribution>``), or it cannot be imported.
    """
    found = list(entry_points(group=group, name=name))
    if not found:
        raise ConfigError(
            f"{label} needs {distribution}, which is not installed: pip install {distribution}"
        )
    point = found[0]
    try:
        factory = point.load()
    except Exception as exc:
        raise ConfigError(
            f"{label}: cannot load {point.value} (entry point {name!r} of {group}): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not callable(factory):
        raise ConfigError(
            f"{label}: {point.value} (entry point {name!r} of {group}) is not callable"
        )
    return factory  # type: ignore[no-any-return]


def _label(apps: Sequence[Application], name: str) -> str:
    """The setting ``name`` as the user gave it, from the highest layer that set it."""
    sources = {app.cfg.settings[name].source for app in apps if name in app.cfg}
    setting = next(app.cfg.settings[name] for app in apps if name in app.cfg)
    if "cli" in sources:
        return str(setting.flags_for()[-1])
    if "env" in sources:
        return str(setting.env_var())
    return name


def find_companions(
    apps: Sequence[Application],
    *,
    running: Mapping[str, Any] | None = None,
    group: str = GROUP,
) -> dict[str, list[Application]]:
    """The companion applications the settings of ``apps`` ask for: setting -> applications.

    ``running``: the companions an arbiter runs already (``arbiter.extra["companions"]``),
    skipped. Every application sees the global settings of a loaded command line; set in code
    on one application of a MultiApp (``new_app(..., dashboard=True)``), it applies to the
    arbiter.

    Raises:
        ConfigError: the applications ask for different addresses, the package is missing,
            its factory refuses (e.g. a remote address without a token), or a companion is
            named like one of ``apps``.
    """
    found: dict[str, list[Application]] = {}
    names = {str(app.name) for app in apps}
    for companion in COMPANIONS:
        name = companion.setting
        if running is not None and name in running:
            continue
        values = [v for v in dict.fromkeys(app.cfg.get(name, None) for app in apps) if v]
        if not values:
            continue
        label = _label(apps, name)
        if len(values) > 1:
            raise ConfigError(
                f"{label}: the applications ask for different addresses ({', '.join(values)}); "
                "one runs per arbiter"
            )
        factory = load_factory(
            companion.entry_point, distribution=companion.distribution, label=label, group=group
        )
        made = list(factory(name, values[0], apps=list(apps), label=label) or ())
        for app in made:
            if str(app.name) in names:
                raise ConfigError(
                    f"{label}: its application is named {app.name!r}, like one of yours: "
                    "rename yours"
                )
            names.add(str(app.name))
        found[name] = made
    return found


def add_companions(arbiter: Any, companions: Mapping[str, Sequence[Application]]) -> None:
    """Add ``companions`` (from :func:`find_companions`) to ``arbiter`` and record them in
    ``arbiter.extra["companions"]``."""
    running = arbiter.extra.setdefault("companions", {})
    for name, apps in companions.items():
        running[name] = list(apps)
        for app in apps:
            app.add_to(arbiter)
