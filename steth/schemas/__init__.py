"""The wire contract: pydantic models and subject names only (stdlib + pydantic imports)."""
