"""Small helpers of the agent's probes: iproute2 JSON access, and programs run inside a namespace."""
