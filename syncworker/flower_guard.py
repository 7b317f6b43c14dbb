"""Flower as `syncworker flower` runs it: it can look, never touch, unless an operator says so.

Flower's `read_only` option (2.1+) refuses every control endpoint, but only when it is set:
Flower reads it from `FLOWER_READ_ONLY`, a config file it may not find (`FLOWER_CONF` or
`./flowerconfig.py` in the working directory), then the command line, the last one winning.
A `syncworker flower` started anywhere but the Docker image's working directory would
therefore run with full control. So the command line always states it, and a route placed
before Flower's own refuses the control paths whatever Flower's options say, so a Flower
release whose new endpoint forgets the check changes nothing here.
"""

from __future__ import annotations

from typing import Any

import tornado.web

SWITCH = "SYNCWORKER_FLOWER_ALLOW_CONTROL"
# Every endpoint that applies, sends, aborts, revokes or terminates a task, changes its
# limits, or shuts a worker down, resizes its pool or moves its queues.
CONTROL_PATHS = (
    r"/api/task/(?:apply|async-apply|send-task|abort|revoke|terminate|timeout|rate-limit)(?:/.*)?"
    r"|/api/worker/(?:shutdown|pool|queue)(?:/.*)?"
)
REFUSAL = (
    f"Flower is read-only under syncworker: task and worker control is off. "
    f"An operator turns it on with {SWITCH}=true."
)


class RefuseControl(tornado.web.RequestHandler):
    """403 for every method on a control path, before authentication or XSRF checks run:
    nothing is revealed but the refusal."""

    def check_xsrf_cookie(self) -> None:
        """The request is refused anyway; its token does not matter."""

    def prepare(self) -> None:
        self.set_status(403)
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish(REFUSAL)


def flower_arguments(*, allow_control: bool) -> list[str]:
    """The option that wins over Flower's environment and config file."""
    return [f"--read_only={not allow_control}"]


def install(*, allow_control: bool) -> None:
    """Put the refusing route first in Flower's table (before Flower builds its app)."""
    if allow_control:
        return
    from flower import urls

    handlers: list[Any] = urls.handlers
    if not isinstance(handlers, list):
        raise RuntimeError("this Flower version keeps its routes elsewhere; refusing to start")
    handlers.insert(0, (CONTROL_PATHS, RefuseControl))
