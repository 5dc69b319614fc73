"""Reading settings from the environment.

Every setting has one name. A secret may instead be given as ``NAME_FILE``, the path of a
file holding it (Docker and Kubernetes secrets mount that way), so it never appears in
``ps`` output or a process dump of the environment.
"""

import os

from django.core.exceptions import ImproperlyConfigured


def env(name, default=None, *, required=False):
    """The value of ``name`` (or the contents of ``name_FILE``), else ``default``.

    ``required=True`` raises at start-up when neither is set: production secrets have no
    default, so a forgotten variable stops the process instead of running with a dev value.
    """
    value = os.environ.get(name)
    file_path = os.environ.get(f"{name}_FILE")
    if value is None and file_path:
        try:
            with open(file_path, encoding="utf-8") as secret_file:
                value = secret_file.read().strip()
        except OSError as error:
            raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {error}") from error
    if value is None or value == "":
        if required:
            raise ImproperlyConfigured(f"The environment variable {name} (or {name}_FILE) must be set.")
        return default
    return value


def env_bool(name, default=False):
    value = env(name)
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}.")


def env_int(name, default):
    value = env(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}.") from error


def env_list(name, default=()):
    value = env(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]
