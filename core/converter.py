"""The data converter: Temporal's default, except that an input that cannot be read as the
workflow's dataclass fails the workflow with a typed error instead of failing its task.

Without this, a workflow started by hand (Temporal CLI or UI) with, say, a list where a dict
belongs would retry its first task forever and stay "running".
"""

from __future__ import annotations

import dataclasses
from typing import Any

import temporalio.api.common.v1
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.exceptions import ApplicationError

from core.errors import INVALID_INPUT


class StrictJSONPayloadConverter(JSONPlainPayloadConverter):
    def from_payload(
        self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None
    ) -> Any:
        try:
            return super().from_payload(payload, type_hint)
        except (TypeError, ValueError) as err:
            cause = f" ({err.__cause__})" if err.__cause__ else ""
            raise ApplicationError(
                f"input: cannot be read as {getattr(type_hint, '__name__', 'the input')}: "
                f"{err}{cause}",
                type=INVALID_INPUT, non_retryable=True,
            ) from None


class PayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        converters: list[EncodingPayloadConverter] = [
            StrictJSONPayloadConverter() if isinstance(c, JSONPlainPayloadConverter) else c
            for c in DefaultPayloadConverter.default_encoding_payload_converters
        ]
        super().__init__(*converters)


DATA_CONVERTER = dataclasses.replace(
    DataConverter.default, payload_converter_class=PayloadConverter
)
