"""The multiprocess directory is made usable before prometheus_client reads it."""

import os

from leavehome.metrics_files import multiprocess_dir_clear, multiprocess_dir_prepare


def test_an_empty_directory_setting_means_off(monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    multiprocess_dir_prepare()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_a_missing_directory_is_made_and_a_previous_run_cleared(monkeypatch, tmp_path):
    directory = tmp_path / "metrics-web"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    multiprocess_dir_prepare()
    assert directory.is_dir()
    (directory / "counter_1.db").write_bytes(b"")
    (directory / f"counter_{os.getpid()}.db").write_bytes(b"")
    multiprocess_dir_clear()
    assert [path.name for path in directory.iterdir()] == [f"counter_{os.getpid()}.db"]
