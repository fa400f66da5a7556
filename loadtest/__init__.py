"""Locust load test of the `pipeline` ensemble and the loss check that follows a run."""
