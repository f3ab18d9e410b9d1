"""Industrial connectors: OPC UA subscriptions and Modbus TCP polls turned into readings that
enter the gateway's intake like any MQTT message (edge_gateway/intake.py). Configured by the
YAML file named by EDGE_CONNECTORS_FILE (config.py; docs/connectors.md)."""
