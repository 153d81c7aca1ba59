"""Step types and the data each may carry: a union tagged by ``dataType`` (SPEC section 5.1).

A shape msgspec cannot decode (an unknown tag, a missing field, a probability outside 0..1) is a
400; a well-formed tag that does not fit the step type is the domain's 422 STEP_DATA_MISMATCH.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from app.db.runs import DATA_TYPE_OF_STEP

__all__ = [
    "ClosedQuestionData",
    "MultipleChoiceData",
    "ReportData",
    "StepData",
    "StepType",
    "data_fits_step",
    "expected_data_type",
]

StepType = Literal["say", "wait", "closedQuestion", "multipleChoice", "report", "statusCheck"]
Answer = Annotated[str, Meta(max_length=10_000)]


class _StepData(msgspec.Struct, tag_field="dataType", rename="camel", forbid_unknown_fields=True):
    pass


class ClosedQuestionData(_StepData, tag="closedQuestionData"):
    answer: Answer
    probability: Annotated[float, Meta(ge=0, le=1)]


class MultipleChoiceData(_StepData, tag="multipleChoiceData"):
    answer: Answer
    intention_type: Literal["command", "offline", "other"]


class ReportData(_StepData, tag="reportData"):
    sent: bool
    message: Annotated[str, Meta(max_length=10_000)]


StepData = ClosedQuestionData | MultipleChoiceData | ReportData


def expected_data_type(step_type: str) -> str | None:
    """The only data tag a step of this type may carry, or None when it takes no data."""
    return DATA_TYPE_OF_STEP.get(step_type)


def data_fits_step(step_type: str, data: StepData | None) -> bool:
    if data is None:
        return True
    return type(data).__struct_config__.tag == expected_data_type(step_type)
