"""OpenAPI shapes of the Flower endpoints (training/api/flower.py), for the schema only.

Those views parse and answer plain dicts because the Flower side (fedgov-flower's REST
client) is not a DRF client; these serializers document exactly what they read and send,
so /api/schema/ describes them instead of dropping them (drf-spectacular W002). What
fedgov sends back is read-only here; what it reads carries the bounds the services apply.
"""

from __future__ import annotations

from rest_framework import serializers

from fedgov.validation import INT32_MAX


class FailedRuleSerializer(serializers.Serializer):
    site = serializers.CharField(allow_null=True)
    rule_id = serializers.CharField()
    article = serializers.CharField()
    reason = serializers.CharField()


class RefusalSerializer(serializers.Serializer):
    """The gate said no (200): why, and what the strategy should do about it."""

    allowed = serializers.BooleanField()
    run_id = serializers.IntegerField(read_only=True)
    round = serializers.IntegerField(read_only=True)
    state = serializers.CharField()
    reason = serializers.CharField()
    on_refusal = serializers.CharField()
    decision_hash = serializers.CharField(allow_null=True)
    failed_rules = FailedRuleSerializer(many=True)


class TicketBodySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    body = serializers.CharField()
    signature = serializers.CharField()
    key_id = serializers.CharField()
    expires_at = serializers.DateTimeField()


class TicketIssuedSerializer(serializers.Serializer):
    """The gate said yes (201): the signed round ticket the sites' client mod checks."""

    allowed = serializers.BooleanField()
    run_id = serializers.IntegerField(read_only=True)
    round = serializers.IntegerField(read_only=True)
    on_refusal = serializers.CharField()
    ticket = TicketBodySerializer()


class UpdateReportSerializer(serializers.Serializer):
    """One site's update as the strategy reports it (services.parse_update_reports)."""

    node_id = serializers.RegexField(r"^[0-9]+$", max_length=64)
    update_hash = serializers.RegexField(r"^[0-9a-f]{64}$")
    # The service accepts 0 <= n < 2^31 (services.flower._check_count).
    num_examples = serializers.IntegerField(min_value=0, max_value=INT32_MAX)
    records_used = serializers.IntegerField(min_value=0, max_value=INT32_MAX, required=False)
    records_excluded = serializers.IntegerField(min_value=0, max_value=INT32_MAX, required=False)
    # The data contract (issue 13): the digest of the subject list the site filtered by,
    # and of the subjects it used.
    filter_digest = serializers.RegexField(r"^[0-9a-f]{64}$", required=False)
    subjects_digest = serializers.RegexField(r"^[0-9a-f]{64}$", required=False)
    metrics = serializers.DictField(required=False)


class UpdatesReportSerializer(serializers.Serializer):
    """POST body: a round's accepted and rejected updates, its aggregate, its DP release."""

    updates = UpdateReportSerializer(many=True)
    rejected = UpdateReportSerializer(many=True, required=False)
    aggregate_hash = serializers.RegexField(r"^[0-9a-f]{64}$", required=False, allow_null=True)
    dp = serializers.DictField(required=False, allow_null=True)
    site_refusals = serializers.ListField(child=serializers.DictField(), required=False)


class RecordedUpdateSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    kind = serializers.CharField()
    node_id = serializers.CharField(allow_blank=True)
    site_id = serializers.IntegerField(read_only=True, allow_null=True)
    accepted = serializers.BooleanField()
    rejection_reason = serializers.CharField(allow_blank=True)


class ModelUpdateSerializer(serializers.Serializer):
    kind = serializers.CharField()
    site_id = serializers.IntegerField(read_only=True, allow_null=True)
    node_id = serializers.CharField(allow_blank=True)
    update_hash = serializers.CharField()
    num_examples = serializers.IntegerField(read_only=True)
    records_used = serializers.IntegerField(read_only=True)
    records_excluded = serializers.IntegerField(read_only=True)
    metrics = serializers.DictField()
    accepted = serializers.BooleanField()
    rejection_reason = serializers.CharField(allow_blank=True)


class SubjectListSerializer(serializers.Serializer):
    """A site's exclusion list or allow-list for one round, with its digest."""

    site = serializers.CharField()
    round = serializers.IntegerField(read_only=True)
    digest = serializers.CharField()
    count = serializers.IntegerField(read_only=True)
    pseudonyms = serializers.ListField(child=serializers.CharField())


class SupernodeBindSerializer(serializers.Serializer):
    node_id = serializers.CharField()
    public_key = serializers.CharField(required=False, allow_blank=True)


class SupernodeBoundSerializer(serializers.Serializer):
    site = serializers.CharField()
    node_id = serializers.CharField()


class SupernodeUnbindSerializer(serializers.Serializer):
    reason = serializers.CharField()


class PublicKeySerializer(serializers.Serializer):
    key_id = serializers.CharField()
    public_key_pem = serializers.CharField()


class EvaluationsReportSerializer(serializers.Serializer):
    """The sites' federated-evaluation replies under the round's evaluate ticket."""

    evaluations = UpdateReportSerializer(many=True)
    rejected = UpdateReportSerializer(many=True, required=False)
    site_refusals = serializers.ListField(child=serializers.DictField(), required=False)


class EvaluationsRecordedSerializer(serializers.Serializer):
    recorded = serializers.IntegerField(read_only=True)


class RoundClosedSerializer(serializers.Serializer):
    """The round's state after a close request (200 closed, 409 not yet closable)."""

    run_id = serializers.IntegerField(read_only=True)
    round = serializers.IntegerField(read_only=True)
    state = serializers.CharField()
    reason = serializers.CharField()
