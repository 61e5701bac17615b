import pytest

from personalab.engine.routes import Route
from personalab.errors import PersonalabError
from personalab.routing import RoutingTable
from personalab.strategies import get_strategy, list_strategies


def test_unified_is_registered():
    names = [name for name, _ in list_strategies()]
    assert "unified" in names
    assert get_strategy("unified").name == "unified"


def test_typo_suggests_the_close_name():
    with pytest.raises(PersonalabError, match="did you mean unified"):
        get_strategy("unifed")


def test_routing_table_round_trips_and_falls_back_to_default():
    table = RoutingTable(default=Route.single("unified"), table={"a/b": Route({"persona/x": 0.7, "unified": 0.3})})
    again = RoutingTable.from_json(table.to_json())
    assert again == table
    assert again.route("a/b") == Route({"unified": 0.3, "persona/x": 0.7})
    assert again.route("someone new") == Route.single("unified")
    assert again.uses_default("someone new") and not again.uses_default("a/b")
    assert again.adapters() == ["persona/x", "unified"]


def test_route_drops_zero_weights_and_knows_single_adapters():
    assert Route({"a": 1.0, "b": 0.0}).single_adapter == "a"
    assert Route({"a": 0.5}).single_adapter is None
    assert str(Route({"a": 1.0, "b": 0.5})) == "a + 0.5*b"
