"""Benchmarks that print JSON: `make bench` (quick, CI smoke) and `make bench-full` (figures).

Each benchmark is a module run from the repository root (`python -m bench.<name> [--full]`)
against a real deployment in miniature (`tests/stack.py`): sandboxes over HTTP, a throw-away
Postgres database, real Redis and real `celery worker` processes. Every benchmark measures its
own baseline in the same run and reports ratios, so numbers taken on a loaded machine still
compare; none of them asserts on wall-clock time.
"""
