"""The lab: real Debian 12 hosts on this machine (systemd-nspawn), their mirror, and their Server blocks."""
