"""The data converter: Temporal's pydantic JSON converter (type adapters are built once per
type and cached, where the default converter re-reads a dataclass's type hints for every
payload), and an input that cannot be read as the expected dataclass fails the workflow
with a typed error naming the field, instead of failing its task.

Without the latter, a workflow started by hand (Temporal CLI or UI) with, say, a list where
a dict belongs would retry its first task forever and stay "running".
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import pydantic
import temporalio.api.common.v1
from pydantic import TypeAdapter
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.exceptions import ApplicationError

from volume_manage.shared.errors import INVALID_INPUT

# One cache of type adapters for the whole process. The workflow sandbox makes a new payload
# converter for every workflow run, and a converter's own cache starts empty, so each run
# built its adapters again: 8 % of a busy worker's CPU (py-spy on bench/throughput.py).
_type_adapter = functools.lru_cache(maxsize=1024)(TypeAdapter)


class StrictJSONPayloadConverter(PydanticJSONPlainPayloadConverter):
    def __init__(self) -> None:
        super().__init__()
        self._type_adapter = _type_adapter

    def from_payload(
        self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None
    ) -> Any:
        try:
            return super().from_payload(payload, type_hint)
        except pydantic.ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "input"
            more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
            raise ApplicationError(
                f"{where}: {first['msg']}{more}", type=INVALID_INPUT, non_retryable=True
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
