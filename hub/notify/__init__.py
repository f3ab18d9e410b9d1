"""Notifications of alert transitions: channels, routes and pacing (`config`, `routing`), what a
message says and how each channel shapes it (`content`, `formats`), the outbox and its dispatcher
(`store`, `dispatcher`), and the suppression hook (`suppression`). Pure except `senders`,
`postgres_store` and `dispatcher`."""
