"""The collector room: one process per host that ships the spool into ClickHouse.

Imports spool, store, config and errors only. ``python -m logging_backend.collector`` runs it.
"""
