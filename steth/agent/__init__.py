"""steth-agent: the daemon that runs probes on one node."""
