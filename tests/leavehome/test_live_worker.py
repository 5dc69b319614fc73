import pytest

from leavehome.celery import app
from leavehome.tasks import ping
from tests.conftest import _reset_broker_connections


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("run", [1, 2])
def test_task_travels_through_the_broker_to_a_worker_process(live_worker, run):
    # Two runs in one process: the second must not inherit the first one's closed pools.
    result = ping.delay()
    assert result.get(timeout=30) == "pong"
    assert live_worker.process.poll() is None


def test_resetting_for_a_live_worker_clears_a_leaked_inside_a_task_flag():
    # Eager tasks in two threads nest Celery's process-wide flag out of order and leave it
    # set; result.get() would then refuse to wait. The fixture's reset must clear it.
    from celery.result import denied_join_result, task_join_will_block

    first, second = denied_join_result(), denied_join_result()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    assert task_join_will_block()
    _reset_broker_connections(app)
    assert not task_join_will_block()


@pytest.mark.django_db
def test_tasks_are_eager_again_after_a_live_worker_test():
    assert app.conf.task_always_eager
    assert ping.delay().get(timeout=1) == "pong"
