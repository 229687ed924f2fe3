"""Turning failures into Temporal errors with a type callers can match on.

Errors that retrying cannot fix (bad input, already managed, quota) are non-retryable;
anything else (database down, backend timeout) is left retryable for the retry policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from temporalio.exceptions import ApplicationError

from volume_manage.shared import errors
from volume_manage.shared.errors import RequestError
from volume_manage.shared.faults import InjectedFault

F = TypeVar("F", bound=Callable[..., Any])


def rejected(error_type: str, message: str) -> ApplicationError:
    return ApplicationError(message, type=error_type, non_retryable=True)


@contextmanager
def typed_errors() -> Iterator[None]:
    """Translate the project's own exceptions into typed ApplicationErrors."""
    try:
        yield
    except RequestError as err:
        raise rejected(err.type_name, str(err)) from None
    except InjectedFault as err:
        raise ApplicationError(
            str(err), type=errors.INJECTED_FAULT, non_retryable=not err.retryable
        ) from None
