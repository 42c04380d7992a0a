"""Planning, from a host's facts to its desired state: facts parsing, sizing, the desired files, which release.

Pure functions: facts in, decisions out. Tasks gather the facts and apply the decisions.
"""
