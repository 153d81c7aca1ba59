"""Pure rules of runs: variable batches, steps against a graph, the node-type cache."""

from __future__ import annotations

import datetime
import uuid

import msgspec
import pytest

from app.domain.runs.schemas import MAX_BATCH, StepIn, VariableIn, check_variables
from app.domain.runs.step_data import ClosedQuestionData, MultipleChoiceData, ReportData
from app.domain.runs.steps import NodeTypeCache, node_types_of, step_problems
from app.lib.errors import ValidationFailed

NODE_TYPES = {"ask": "closedQuestion", "pick": "multipleChoice", "tell": "report", "hi": "say"}
AT = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)


def steps_from(*items: dict) -> list[StepIn]:
    return msgspec.convert(list(items), list[StepIn])


def test_variables_with_one_value_each_pass() -> None:
    check_variables([VariableIn(key="a", str_val=""), VariableIn(key="b", bool_val=False)])


def test_empty_string_false_and_zero_count_as_values() -> None:
    check_variables([VariableIn(key="a", str_val=""), VariableIn(key="b", num_val=0.0)])


def test_every_bad_variable_is_reported_by_index() -> None:
    items = [
        VariableIn(key="a"),
        VariableIn(key="b", str_val="x", num_val=1.0),
        VariableIn(key="a", str_val="y"),
    ]

    with pytest.raises(ValidationFailed) as failed:
        check_variables(items)

    assert [d["field"] for d in failed.value.details] == ["[0]", "[1]", "[2].key"]


def test_a_variable_batch_is_bounded() -> None:
    with pytest.raises(ValidationFailed):
        check_variables([VariableIn(key=f"k{i}", num_val=1.0) for i in range(MAX_BATCH + 1)])


def test_steps_that_fit_the_graph_have_no_problems() -> None:
    steps = steps_from(
        {"nodeId": "hi", "stepType": "say", "executedAt": "2026-03-01T00:00:00Z", "nextNodeId": "ask"},
        {
            "nodeId": "ask",
            "stepType": "closedQuestion",
            "executedAt": "2026-03-01T00:00:01Z",
            "data": {"dataType": "closedQuestionData", "answer": "no", "probability": 0},
        },
        {"nodeId": "tell", "stepType": "report", "executedAt": "2026-03-01T00:00:02Z"},
    )

    assert step_problems(steps, NODE_TYPES) == []


@pytest.mark.parametrize(
    ("step_type", "data", "fits"),
    [
        ("closedQuestion", ClosedQuestionData(answer="yes", probability=1.0), True),
        ("multipleChoice", MultipleChoiceData(answer="b", intention_type="offline"), True),
        ("report", ReportData(sent=False, message=""), True),
        ("closedQuestion", ReportData(sent=False, message=""), False),
        ("report", MultipleChoiceData(answer="b", intention_type="other"), False),
        ("say", ClosedQuestionData(answer="yes", probability=1.0), False),
    ],
)
def test_data_must_carry_the_tag_of_its_step_type(step_type: str, data: object, fits: bool) -> None:
    node = next(node for node, kind in {**NODE_TYPES, "hi": "say"}.items() if kind == step_type)
    step = StepIn(node_id=node, step_type=step_type, executed_at=AT, data=data)  # type: ignore[arg-type]

    problems = step_problems([step], NODE_TYPES)

    assert (problems == []) is fits
    if not fits:
        assert problems[0]["code"] == "STEP_DATA_MISMATCH"


def test_unknown_nodes_and_type_mismatches_are_reported_per_field() -> None:
    steps = [
        StepIn(node_id="gone", step_type="say", executed_at=AT),
        StepIn(node_id="hi", step_type="wait", executed_at=AT, next_node_id="gone"),
    ]

    problems = step_problems(steps, NODE_TYPES)

    assert [(p["field"], p["code"]) for p in problems] == [
        ("[0].nodeId", "NODE_NOT_IN_VERSION"),
        ("[1].stepType", "STEP_TYPE_MISMATCH"),
        ("[1].nextNodeId", "NODE_NOT_IN_VERSION"),
    ]


def test_node_types_are_read_from_graph_nodes() -> None:
    nodes = [{"id": "a", "type": "say", "label": "Hi"}, {"id": "b", "type": "wait"}]

    assert node_types_of(nodes) == {"a": "say", "b": "wait"}
    assert node_types_of(None) == {}


def test_the_node_type_cache_forgets_the_least_recently_used_version() -> None:
    cache = NodeTypeCache(max_versions=2)
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cache.put(first, {"a": "say"})
    cache.put(second, {"b": "say"})
    assert cache.get(first) == {"a": "say"}  # now the most recently used

    cache.put(third, {"c": "say"})

    assert cache.get(second) is None
    assert cache.get(first) == {"a": "say"}
    assert len(cache) == 2
