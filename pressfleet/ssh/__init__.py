"""SSH: connections that trust only a pinned host key (`remote`), and idempotent steps over them (`converge`)."""
