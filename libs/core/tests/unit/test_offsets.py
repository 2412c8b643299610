from keel_core.bus.offsets import PartitionProgress


def test_commit_point_waits_for_the_oldest_record_in_flight() -> None:
    progress = PartitionProgress()
    assert progress.committable() is None
    for offset in (10, 11, 12):
        progress.started(offset)
    assert progress.committable() == 10
    progress.finished(12)
    progress.finished(11)
    assert progress.committable() == 10
    progress.finished(10)
    assert progress.committable() == 13
    assert progress.busy == 0
