"""Triton glue: the Python-backend adapters of the stages (imports riskpipe and capture)."""
