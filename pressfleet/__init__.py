"""pressfleet: WordPress fleet operations as Prefect 3 flows."""

__version__ = "0.1.0"
