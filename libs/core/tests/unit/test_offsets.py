"""The commit point of a partition while records finish out of order, and where a new owner
picks up from such a commit."""

from keel_core.bus.offsets import PartitionProgress, decode_pending, encode_pending


def test_a_record_still_in_flight_is_listed_not_waited_for() -> None:
    progress = PartitionProgress()
    assert progress.commit_point() is None
    for offset in (10, 11, 12):
        progress.started(offset)
    assert progress.commit_point() == (13, "keel.pending=10,11,12")
    progress.finished(12)
    progress.finished(11)
    # The long record 10 no longer holds back 11 and 12: a crash reads only 10 again.
    assert progress.commit_point() == (13, "keel.pending=10")
    progress.finished(10)
    assert progress.commit_point() == (13, "")
    assert progress.busy == 0


def test_a_new_owner_reads_again_only_what_was_in_flight() -> None:
    progress = PartitionProgress.resumed(13, decode_pending("keel.pending=10"))
    assert progress.resume_from == 10
    assert progress.busy == 0, "awaited, not handed out yet"
    assert [o for o in (10, 11, 12, 13) if progress.admit(o)] == [10, 13]
    assert progress.busy == 2
    progress.finished(13)
    assert progress.commit_point() == (14, "keel.pending=10")
    progress.finished(10)
    assert progress.commit_point() == (14, "")
    assert progress.resume_from is None


def test_an_awaited_record_deleted_meanwhile_does_not_pin_the_partition() -> None:
    progress = PartitionProgress.resumed(13, [5])
    assert not progress.admit(11), "5 was deleted (retention): reading starts later"
    assert progress.commit_point() == (13, "")


def test_when_the_list_would_not_fit_the_offset_stops_at_the_first_left_out() -> None:
    progress = PartitionProgress()
    for offset in range(100, 110):
        progress.started(offset)
    progress.finished(109)
    limit = len(encode_pending([100, 101, 102]))
    assert progress.commit_point(limit) == (103, "keel.pending=100,101,102")


def test_a_commit_without_a_list_resumes_at_its_offset() -> None:
    assert decode_pending("") == []
    assert decode_pending("written by someone else") == []
    assert decode_pending("keel.pending=x") == []
    progress = PartitionProgress.resumed(7, [])
    assert progress.resume_from is None
    assert not progress.admit(6)
    assert progress.admit(7)
    assert progress.commit_point() == (8, "keel.pending=7")
