"""The directory of prometheus_client's multiprocess mode (see leavehome/metrics.py).

Apart from the metrics themselves, so that gunicorn's master can empty the directory without
creating files in it. Importing the metrics creates the process's files at once, and
prometheus_client decides on multiprocess mode when it is first imported, from the variable
alone: settings.py calls :func:`multiprocess_dir_prepare` before any of that happens.
"""

import os

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir_prepare() -> None:
    """Make PROMETHEUS_MULTIPROC_DIR usable by this process, whatever the environment says.

    An empty value (an env file's ``PROMETHEUS_MULTIPROC_DIR=``) means off: removed, or
    prometheus_client would write its files into the working directory. A directory that does
    not exist (a manage.py command on a host where the web service is not running) is made.
    """
    path = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if path is None:
        return
    if not path.strip():
        del os.environ[MULTIPROCESS_DIR_VARIABLE]
        return
    os.makedirs(path, exist_ok=True)


def multiprocess_dir_clear() -> None:
    """Empty this service's metrics directory as it starts, before any child is forked.

    Files of the previous run would otherwise add its counts to this one's. The calling
    process's own files stay: a Celery worker has imported the metrics by then.
    """
    path = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if not path:
        return
    own = f"_{os.getpid()}.db"
    for name in os.listdir(path):
        if name.endswith(".db") and not name.endswith(own):
            os.remove(os.path.join(path, name))
