from bus.expectations import Expectations


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_unknown_key_is_satisfied():
    assert Expectations().satisfied("default/web")


def test_creations_must_all_be_observed():
    exp = Expectations(clock=Clock())
    exp.expect_creations("rs", 3)
    assert not exp.satisfied("rs")
    exp.creation_observed("rs")
    exp.creation_observed("rs")
    assert not exp.satisfied("rs")
    assert exp.pending("rs") == (1, set())
    exp.creation_observed("rs")
    assert exp.satisfied("rs")
    exp.creation_observed("rs")  # an extra observation never goes below zero
    assert exp.pending("rs") == (0, set())


def test_deletions_tracked_by_uid():
    exp = Expectations(clock=Clock())
    exp.expect_deletions("rs", ["u1", "u2"])
    exp.deletion_observed("rs", "u1")
    exp.deletion_observed("rs", "u1")  # the same delete seen twice counts once
    exp.deletion_observed("rs", "other")
    assert not exp.satisfied("rs")
    exp.deletion_observed("rs", "u2")
    assert exp.satisfied("rs")


def test_creates_and_deletes_both_pending():
    exp = Expectations(clock=Clock())
    exp.expect_creations("rs", 1)
    exp.expect_deletions("rs", ["u1"])
    exp.creation_observed("rs")
    assert not exp.satisfied("rs")
    exp.deletion_observed("rs", "u1")
    assert exp.satisfied("rs")


def test_lower_expectations_after_failed_calls():
    exp = Expectations(clock=Clock())
    exp.expect_creations("rs", 4)
    exp.expect_deletions("rs", ["a", "b"])
    exp.lower_expectations("rs", adds=4, uids=["a", "b"])
    assert exp.satisfied("rs")


def test_expired_expectation_is_satisfied():
    clock = Clock()
    exp = Expectations(ttl=300, clock=clock)
    exp.expect_creations("rs", 2)
    clock.t += 299
    assert not exp.satisfied("rs")
    clock.t += 2
    assert exp.satisfied("rs")
    exp.expect_creations("rs", 1)  # a new expectation restarts the TTL
    assert not exp.satisfied("rs")


def test_delete_forgets_key():
    exp = Expectations(clock=Clock())
    exp.expect_creations("rs", 2)
    exp.delete("rs")
    assert exp.satisfied("rs")
    assert exp.pending("rs") == (0, set())
