"""The hub: Faust agents that ingest, aggregate, alert and track status into PostgreSQL
and Redis."""
