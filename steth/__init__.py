"""steth: a network-probe fleet for OpenStack operators."""

__version__ = "0.1.0"
