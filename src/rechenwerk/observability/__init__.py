"""Prometheus metrics (docs/operations.md, "Metrics").

- ``instruments``: what the process counts as it works (HTTP latency, submissions,
  scheduler phases, backend errors). It imports only ``prometheus_client``, so every
  layer may use it (the scheduling core does not: the loop observes its phases).
- ``collector``: gauges of the centre's state, read from the database at scrape time
  (jobs, queue, GPUs per node, award balances, notifier outbox), so every server process
  answers the same.
- ``backend``: the execution backend wrapped to count its errors (built by ``app.py``).
- ``http``: the request-latency middleware, the access-controlled ``/metrics`` route and
  the optional metrics port of its own.
"""
