from keel_contracts import topics


def test_state_topics_are_compacted_and_audit_is_kept_forever() -> None:
    specs = {s.name: s for s in topics.all_specs()}
    assert specs[topics.CHECKPOINTS].configs()["cleanup.policy"] == "compact"
    assert specs[topics.TOOL_RESULTS].configs()["cleanup.policy"] == "compact"
    audit = specs[topics.AUDIT].configs()
    assert audit["cleanup.policy"] == "delete"
    assert audit["retention.ms"] == "-1"
    assert specs[topics.TASKS].configs()["cleanup.policy"] == "delete"


def test_every_consumed_topic_has_a_dead_letter_topic() -> None:
    names = {s.name for s in topics.all_specs()}
    for consumed in (topics.TASKS, topics.APPROVAL_REQUESTS, topics.APPROVAL_DECISIONS):
        assert topics.dlq_of(consumed) in names
