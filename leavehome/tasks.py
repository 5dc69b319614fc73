from celery import shared_task


@shared_task
def ping():
    """A round trip through the broker, for operators and the deployment test."""
    return "pong"
