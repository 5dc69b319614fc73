import pytest

from leavehome.celery import app
from leavehome.tasks import ping


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("run", [1, 2])
def test_task_travels_through_the_broker_to_a_worker_process(live_worker, run):
    # Two runs in one process: the second must not inherit the first one's closed pools.
    result = ping.delay()
    assert result.get(timeout=30) == "pong"
    assert live_worker.process.poll() is None


@pytest.mark.django_db
def test_tasks_are_eager_again_after_a_live_worker_test():
    assert app.conf.task_always_eager
    assert ping.delay().get(timeout=1) == "pong"
