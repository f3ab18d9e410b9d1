"""The hub worker: `Worker` (its agents and timers, registered on the Faust app in one place),
`WorkerRuntime` (what they share, opened once), the probes, and Faust's Kafka connection.
hub.app builds the Faust app from these."""
