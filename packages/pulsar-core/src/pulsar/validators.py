"""Validators for :class:`pulsar.Setting` declarations.

Application packages declare their own settings with these, so a value is checked (and reported)
the same way whatever the package::

    from pulsar import Setting
    from pulsar.validators import validate_positive_int

    class MaxBatch(Setting):
        name = "rpc_max_batch"
        validator = validate_positive_int
        ...

``declare_app("wsgi", requires=("socket",))`` makes a config of an app have the settings of
the apps it builds on (here the server settings: ``bind``, TLS, ``keep_alive``...).

Each validator takes the raw value (from code, a config file, the environment or the command
line) and returns the converted value, or raises ``ValueError``/``TypeError`` with the reason.
"""

from __future__ import annotations

from ._config import (
    declare_app,
    validate_address_or_flag,
    validate_bind,
    validate_bool,
    validate_callable,
    validate_choice,
    validate_dict_or_path,
    validate_group,
    validate_int,
    validate_list_of_strings,
    validate_log_level,
    validate_non_negative_int,
    validate_non_negative_number,
    validate_path_or_none,
    validate_positive_int,
    validate_positive_number,
    validate_string,
    validate_string_or_none,
    validate_umask,
    validate_user,
)

__all__ = [
    "declare_app",
    "validate_address_or_flag",
    "validate_bind",
    "validate_bool",
    "validate_callable",
    "validate_choice",
    "validate_dict_or_path",
    "validate_group",
    "validate_int",
    "validate_list_of_strings",
    "validate_log_level",
    "validate_non_negative_int",
    "validate_non_negative_number",
    "validate_path_or_none",
    "validate_positive_int",
    "validate_positive_number",
    "validate_string",
    "validate_string_or_none",
    "validate_umask",
    "validate_user",
]
