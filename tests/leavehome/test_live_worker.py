import pytest

from leavehome.tasks import ping


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_task_travels_through_the_broker_to_a_worker_process(live_worker):
    result = ping.delay()
    assert result.get(timeout=30) == "pong"
    assert live_worker.process.poll() is None
