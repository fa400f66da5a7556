"""The capture room: runs inside Triton's stub processes (records, batching, spool writing).

Imports spool, config and errors only: a stage process never talks to the store.
"""
