"""Disaster recovery: a standby of a site on a second server, failover with fencing, traffic, drills.

`replication` (pure): MariaDB GTID replication's names, SQL and parsing. `decide` (pure): when an automatic
failover may run. `haproxy` (pure): the front's configuration. `traffic` (I/O): HAProxy and Route 53 behind one
interface. The remote steps are in tasks/standby.py, the flows in flows/standby.py and flows/failover.py.
"""
