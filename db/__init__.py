"""PostgreSQL schema of the hub: plain numbered SQL migrations (``NNNN_name.sql``), shipped as
package data and applied in order by ``hub.storage.migrations.migrate``."""
