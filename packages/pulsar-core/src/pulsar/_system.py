"""Optional system integration: process titles (setproctitle) and process statistics (psutil).

Both packages are optional: without them every function here degrades to a no-op (titles) or
omits the ``system`` key (statistics). ``PULSAR_NO_PSUTIL`` / ``PULSAR_NO_SETPROCTITLE`` set to
``1`` disable them even when installed (used by the tests to prove both paths).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["set_process_title", "process_title", "system_info", "has_psutil", "has_setproctitle"]


def _disabled(name: str) -> bool:
    return os.environ.get(f"PULSAR_NO_{name.upper()}", "") in ("1", "true", "yes")


def has_setproctitle() -> bool:
    """True when setproctitle is installed and not disabled."""
    if _disabled("setproctitle"):
        return False
    try:
        import setproctitle  # noqa: F401
    except ImportError:
        return False
    return True


def has_psutil() -> bool:
    """True when psutil is installed and not disabled."""
    if _disabled("psutil"):
        return False
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


def process_title(app: str | None, role: str, prefix: str | None = None) -> str:
    """The readable title of a pulsar process: ``pulsar-<app>-<role>`` (or ``<prefix>-...``)."""
    head = prefix or "pulsar"
    return f"{head}-{app}-{role}" if app else f"{head}-{role}"


def set_process_title(title: str) -> bool:
    """Set the process title when setproctitle is available. Returns True when it was set."""
    if not has_setproctitle():
        return False
    import setproctitle

    setproctitle.setproctitle(title)
    return True


def system_info(pid: int | None = None) -> dict[str, Any] | None:
    """Memory, CPU, threads and open file descriptors of a process, or None without psutil."""
    if not has_psutil():
        return None
    import psutil

    try:
        proc = psutil.Process(pid or os.getpid())
        with proc.oneshot():
            mem = proc.memory_info()
            info: dict[str, Any] = {
                "memory_rss": mem.rss,
                "memory_vms": mem.vms,
                "cpu_percent": proc.cpu_percent(None),
                "cpu_times_user": proc.cpu_times().user,
                "cpu_times_system": proc.cpu_times().system,
                "threads": proc.num_threads(),
            }
            try:
                info["open_fds"] = proc.num_fds()
            except (AttributeError, psutil.Error):  # Windows
                info["open_fds"] = None
        return info
    except psutil.Error:
        return None
