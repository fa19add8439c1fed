"""A real local fleet: network namespaces, a NATS server and one agent per node (demo, tests, benchmarks)."""
