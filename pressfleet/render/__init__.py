"""Rendering: every configuration file pressfleet puts on a host, from `pressfleet/templates/config/` (pure)."""
