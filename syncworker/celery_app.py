"""The Celery app: broker and back end from settings, delivery guarantees, queues, beat.

Configuration is added lazily (`add_defaults` with a callable), so importing this module reads
no environment and opens no connection; tests and the demo configure it before first use.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging

from syncworker.logs import configure_logging
from syncworker.settings import Settings, get_settings

# Far below the visibility timeout: a countdown longer than it would be redelivered forever.
MAX_COUNTDOWN_SECONDS = 300


def celery_config(settings: Settings) -> dict[str, Any]:
    visibility = settings.visibility_timeout_seconds
    transport = {"visibility_timeout": visibility}
    poll_every = settings.poll_interval_seconds
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend or settings.broker_url,
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        "visibility_timeout": visibility,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 3600,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_time_limit": 600,
        "task_soft_time_limit": 540,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_soft_shutdown_timeout": 30,
        "worker_hijack_root_logger": False,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        "task_default_queue": "sync",
        # Separate queues, so a flood of syncs never delays a poll.
        "task_routes": {
            "syncworker.poll": {"queue": "poll"},
            "syncworker.sync": {"queue": "sync"},
            "syncworker.reconcile": {"queue": "reconcile"},
            "syncworker.replay": {"queue": "sync"},
        },
        "beat_scheduler": "redbeat.RedBeatScheduler",
        "redbeat_redis_url": settings.effective_redis_url,
        "redbeat_key_prefix": "syncworker:redbeat",
        "redbeat_lock_timeout": max(60, int(poll_every * 5)),
        "beat_max_loop_interval": max(1, min(5, int(poll_every))),
        "beat_schedule": {
            "poll-crm": {"task": "syncworker.poll", "schedule": poll_every, "args": ("crm",)},
            "poll-zenvia": {
                "task": "syncworker.poll",
                "schedule": poll_every,
                "args": ("zenvia",),
            },
            "reconcile": {
                "task": "syncworker.reconcile",
                "schedule": settings.reconcile_interval_seconds,
            },
        },
    }


app = Celery("syncworker", include=["syncworker.tasks"])
app.add_defaults(lambda: celery_config(get_settings()))


@setup_logging.connect
def _structured_logging(**_: Any) -> None:
    """JSON logs for worker and beat, with every configured secret scrubbed."""
    settings = get_settings()
    configure_logging(
        level=settings.log_level, json=settings.log_json, secrets=settings.secret_values()
    )
