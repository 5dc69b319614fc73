"""deploy/env.example must list every environment variable the project reads."""

import re

from tests.conftest import PROJECT_DIR

ENV_CALL = re.compile(r"""\b(?:env|env_bool|env_int|env_list|_secret)\(\s*["']([A-Z][A-Z0-9_]*)["']""")
GUNICORN_CALL = re.compile(r"""os\.environ\.get\(\s*["']([A-Z][A-Z0-9_]*)["']""")
PROCFILE_VAR = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")


def _names(pattern, *paths):
    return {name for path in paths for name in pattern.findall(path.read_text())}


def test_env_example_lists_every_setting():
    python_files = [
        path
        for root in ("leavehome", "venues", "notifications")
        for path in (PROJECT_DIR / root).rglob("*.py")
        if "migrations" not in path.parts
    ]
    read = _names(ENV_CALL, *python_files)
    read |= _names(GUNICORN_CALL, PROJECT_DIR / "deploy" / "gunicorn.conf.py")
    read |= _names(PROCFILE_VAR, PROJECT_DIR / "deploy" / "Procfile")
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (PROJECT_DIR / "deploy" / "env.example").read_text(), re.M))
    assert read, "the pattern found no settings at all"
    assert sorted(read - listed) == [], "settings missing from deploy/env.example"
    assert sorted(listed - read) == [], "deploy/env.example lists settings nothing reads"
