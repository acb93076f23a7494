"""Migration training/0003: a declared ε per round becomes a target ε, never a mechanism."""

from __future__ import annotations

import pytest
from django.db import connection


@pytest.mark.django_db(transaction=True)
def test_declared_epsilon_becomes_a_target_and_the_mechanism_stays_none():
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    before = [
        ("training", "0002_site_eligibility_allow_list"),
        ("sites", "0005_policy_dp_delta_relation_mechanism"),
    ]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    Purpose = old.get_model("sites", "Purpose")
    Policy = old.get_model("sites", "ResidencyPolicy")
    Run = old.get_model("training", "TrainingRun")
    purpose = Purpose.objects.create(code="topics", name="Topics")
    policy = Policy.objects.create(
        name="eu", version=1, status="published", published_at=timezone.now()
    )
    common = {"purpose": purpose, "policy": policy, "aggregator_country": "DE"}
    Run.objects.create(name="declared", num_rounds=4, epsilon_per_round=0.5, **common)
    Run.objects.create(name="silent", num_rounds=2, epsilon_per_round=None, **common)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    from training.models import TrainingRun

    declared = TrainingRun.objects.get(name="declared")
    assert declared.dp_target_epsilon == 2.0 and declared.dp_mechanism == "none"
    assert declared.dp_noise_multiplier is None
    silent = TrainingRun.objects.get(name="silent")
    assert silent.dp_target_epsilon is None and silent.dp_mechanism == "none"
