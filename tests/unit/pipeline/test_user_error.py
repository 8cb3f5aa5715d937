"""`user_error`: the user's message behind Ray's wrappers (a ClipforgeError raised in a task), never a traceback."""

from ray.exceptions import RayTaskError

from pipeline.core.errors import ClipforgeError, user_error


def test_the_message_behind_a_ray_task_error_and_chained_causes():
    original = ClipforgeError("input row does not parse: f.csv line 7")
    wrapped = RayTaskError("read", "Traceback ...worker frames...", original).as_instanceof_cause()
    assert isinstance(wrapped, ClipforgeError)  # Ray's wrapper subclasses the cause: catching it is not enough
    assert user_error(wrapped) is original
    try:
        try:
            raise wrapped
        except ClipforgeError as inner:
            raise RuntimeError("UDF failed to process a data block") from inner
    except RuntimeError as outer:
        assert user_error(outer) is original
    assert user_error(ValueError("a bug")) is None
    assert user_error(original) is original
