"""The directory of prometheus_client's multiprocess mode (see leavehome/metrics.py).

Apart from the metrics themselves, so that gunicorn's master can empty the directory without
creating files in it. The directory must exist before the service starts (systemd's
``RuntimeDirectory=``, a tmpfs volume in compose): importing the metrics creates the
process's files at once.
"""

import os

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


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
