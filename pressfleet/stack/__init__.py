"""The local Prefect stack (server, work pool, deployments, worker) and `make demo` on top of it."""
