"""The deployment files (systemd, NATS, Prometheus, Grafana): shipped in the wheel as `steth.deploy_files`;
`steth deploy export DIR` writes them out."""
