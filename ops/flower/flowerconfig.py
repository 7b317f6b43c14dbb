"""Flower settings for syncworker: authenticated, read-only, nothing kept on disk.

Flower (2.1 or newer) loads this file when `FLOWER_CONF` names it, or when it sits in the
working directory as `flowerconfig.py`. It executes the file and takes every top-level name
that matches one of its options, so helpers here start with an underscore.
See ops/runbook.md, "Flower".
"""

import os
import sys

# Flower's API can revoke tasks and shut workers down: it never runs without a password.
_credentials = os.environ.get("FLOWER_BASIC_AUTH", "")
if ":" not in _credentials:
    sys.exit("FLOWER_BASIC_AUTH must be user:password (several: comma-separated)")
basic_auth = _credentials

# Look, don't touch: no revoke, terminate, rate-limit, pool or shutdown controls. This only
# covers a Flower that finds this file; `syncworker flower` also says so on the command line
# and refuses the control paths itself, unless SYNCWORKER_FLOWER_ALLOW_CONTROL=true
# (syncworker/flower_guard.py).
read_only = True
# Nothing written to disk; the task list is rebuilt from live events after a restart.
persistent = False
# Memory stays bounded however long Flower runs.
max_tasks = 10000
# Scaled-down worker containers disappear from the list after ten minutes.
purge_offline_workers = 600
# Task arguments are ids only (side, record id, dead letter id), safe to show.
tasks_columns = "name,uuid,state,args,received,runtime,worker,retries"

# Behind a reverse proxy on a sub-path, set FLOWER_URL_PREFIX (e.g. `flower`): Flower reads
# it from the environment itself.
