"""Argument checks shared by the constructors: one rule for which exception a bad argument gets.

A value of the wrong *type* raises :exc:`TypeError`, a value of the right type outside the
allowed range raises :exc:`ValueError`. Both messages are the same sentence, naming the parameter,
what it must be and the value given, so a test can pin the text whatever the kind of mistake.
"""


__all__ = ["is_int", "check_int", "check_bool"]


def is_int(value):
    """``value`` is an ``int`` and not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name, value, expected, valid=lambda value: True):
    """Return ``value`` if it is an ``int`` (not a ``bool``) for which ``valid(value)`` holds.

    Parameters
    ----------
    name : str
        The parameter's name, as the caller spells it.
    value
        What the caller passed.
    expected : str
        What ``value`` must be, completing "``name`` must be ...".
    valid : callable
        The range check, applied once ``value`` is known to be an integer.

    Raises
    ------
    TypeError
        If ``value`` is not an integer (``True`` and ``1.0`` are not).
    ValueError
        If ``valid(value)`` is false.
    """
    if not is_int(value):
        raise TypeError(f"{name} must be {expected}, not {value!r}")
    if not valid(value):
        raise ValueError(f"{name} must be {expected}, not {value!r}")
    return value


def check_bool(name, value):
    """Return ``value`` if it is a ``bool``.

    Raises
    ------
    TypeError
        If ``value`` is not a ``bool`` (``1`` is not).
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {value!r}")
    return value
