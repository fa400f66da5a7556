"""gRPC clients of the pipeline: scoring, feedback, the demo."""
