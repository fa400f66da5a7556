"""Load test of the `pipeline` ensemble: ``make load`` (settings: loadtest/locust.conf).

Knobs (locust.conf, LOCUST_* variables or flags): users, spawn rate, run time, and the load
test's own ``--batch-size``, ``--bad-share``, ``--event-pool``, ``--seed``, ``--request-log``
(see loadtest/pipeline.py). After a run, ``python -m loadtest.losscheck`` checks the store.
"""

from locust import constant, task

from loadtest.pipeline import PipelineUser


class ScoringUser(PipelineUser):
    """A caller scoring batches of card payments back to back."""

    wait_time = constant(0)

    @task
    def score(self) -> None:
        """Send one batch of events."""
        self.score_batch()
