"""Push delivery: waking phones through Web Push, FCM and APNs (PROTOCOL §4, docs/push.md).

- channels.py: registering and clearing a device's push channel (validation, SSRF allow-list);
- sealing.py: channel addresses sealed at rest;
- transports.py: one class per push service, each saying whether a failure is permanent;
- delivery.py: the services that claim, send and record pushes in batches of devices;
- tasks.py: the Celery tasks around them.
"""
