"""The fleet model: sites and their identity, their configuration, generated secrets, saved blocks, locks.

Pure or Prefect-block-level code only: nothing here opens an SSH connection.
"""
