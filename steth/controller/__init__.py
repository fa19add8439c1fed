"""steth: the controller CLI. Never imports agent code."""
