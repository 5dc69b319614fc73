# The deployment tests share the topology test's fixtures: real processes and Celery's
# connection state restored after each test.
from tests.deploy.test_topology import processes, restore_celery  # noqa: F401
