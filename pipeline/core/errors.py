"""User-facing errors: raised for bad input, printed as one paragraph by the CLI, exit status 2."""


class ClipforgeError(Exception):
    """Bad input or an unmet precondition the user can fix; never a bug. The CLI prints it and exits 2."""

    exit_code = 2


class NotImplementedYet(ClipforgeError):
    """A command that exists in the CLI surface but whose issue has not landed yet."""


def user_error(exc: BaseException) -> ClipforgeError | None:
    """The `ClipforgeError` behind `exc`, if any: raised in a Ray task, it reaches the driver wrapped (a
    `RayTaskError`, under Ray Data a `UserCodeException`) whose text is the worker's traceback; the user needs only
    the message. Follows Ray's `cause` and Python's `__cause__`/`__context__` chains."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ClipforgeError) and not type(e).__module__.startswith("ray."):  # not RayTaskError(...)
            return e
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return None
