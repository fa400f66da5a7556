"""stagelog: log every arrow of a Triton model-serving pipeline into ClickHouse."""

__version__ = "0.1.0"
