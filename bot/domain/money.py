"""Money is Decimal from the venue boundary inward. Helpers to parse and round it."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation

ZERO = Decimal(0)
ONE = Decimal(1)


def to_decimal(value: object, *, field: str = "value") -> Decimal:
    """Parse a venue or operator number into a Decimal. Floats are refused: they are already inexact."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise ValueError(f"{field}: expected a number, got a boolean")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{field}: {value!r} is not a number") from None
    elif isinstance(value, float):
        raise TypeError(f"{field}: floats are not accepted for money, pass a string or Decimal")
    else:
        raise TypeError(f"{field}: cannot convert {type(value).__name__} to Decimal")
    if not result.is_finite():
        raise ValueError(f"{field}: {value!r} is not a finite number")
    return result


def round_to_step(value: Decimal, step: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Round ``value`` to a multiple of ``step`` (a tick or a lot). ``step`` must be positive."""
    if step <= 0:
        raise ValueError("step must be positive")
    units = (value / step).quantize(ONE, rounding=rounding)
    return (units * step).quantize(step)


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    return round_to_step(value, step, ROUND_FLOOR)


def ceil_to_step(value: Decimal, step: Decimal) -> Decimal:
    return round_to_step(value, step, ROUND_CEILING)


def truncate_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Toward zero: a size is never rounded up past what was asked."""
    return round_to_step(value, step, ROUND_DOWN)


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return step > 0 and (value % step) == 0


def fmt(value: Decimal, places: int | None = None) -> str:
    """Plain (non-scientific) string for messages and storage."""
    if places is not None:
        value = value.quantize(Decimal(1).scaleb(-places))
    text = format(value, "f")
    return text
