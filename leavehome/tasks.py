from celery import shared_task


@shared_task
def ping():
    """A round trip through the broker, for operators and the deployment test."""
    return "pong"


@shared_task(name="leavehome.heartbeat", ignore_result=True)
def heartbeat():
    """Beat's heartbeat (every HEARTBEAT_SECONDS, and once as beat starts), recorded by a worker."""
    from leavehome.heartbeats import heartbeat_record

    heartbeat_record()
