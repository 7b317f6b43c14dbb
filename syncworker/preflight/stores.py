"""Judgements on Postgres and Redis: the database migrated, Redis never evicting."""

from __future__ import annotations

from syncworker.preflight.checklist import Item, fail, ok, warn


def judge_migration(current: str | None, head: str | None) -> Item:
    if current == head:
        return ok("database", "migrated", f"at the code's head revision {head}")
    return fail(
        "database",
        "migrated",
        f"at revision {current or '(empty database)'}, the code needs {head}",
        "run `syncworker db upgrade`",
    )


def judge_eviction_policy(url: str, policy: str | None) -> Item:
    """`policy` None: the server refused CONFIG GET (managed Redis often does)."""
    if policy is None:
        return warn(
            "redis",
            "eviction",
            f"{url}: cannot verify maxmemory-policy (CONFIG GET refused)",
            "make sure the service's maxmemory-policy is noeviction (its console or settings)",
        )
    if policy == "noeviction":
        return ok("redis", "eviction", f"{url}: maxmemory-policy noeviction")
    return fail(
        "redis",
        "eviction",
        f"{url}: maxmemory-policy {policy} may evict queued tasks, locks and rate budgets",
        "set `maxmemory-policy noeviction` (redis.conf, or CONFIG SET maxmemory-policy noeviction)",
    )
