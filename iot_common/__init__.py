"""What both installs (edge and hub) run: structured logs, the settings CLI, backoff, the
Prometheus text format, Kafka's security settings and the naming of its connection failures,
and human-readable sizes. It imports neither `edge_gateway` nor `hub` (tests/unit/
test_import_rules.py), and needs only what both installs have: pydantic-settings and aiokafka."""
