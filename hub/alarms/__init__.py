"""Shelving and maintenance windows (issue 13, docs/alarms.md).

* `hub.alarms.windows`: pure model of a maintenance window (when it is active, what it covers).
* `hub.alarms.shelving`: pure checks of a shelf request.
* `hub.alarms.ports`, `postgres`, `memory`: the `AlarmStore` port and its two adapters.
* `hub.alarms.service`: the web layer's actions (shelve, unshelve, bulk, windows), audited.
* `hub.alarms.suppression`: why a notification must not be sent (shelved, or a window).
* `hub.alarms.gate`: the worker's hold on new alerts while a window suppresses them.
"""
