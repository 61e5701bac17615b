"""Personalizers as routing tables: the identifier input format, how a table applies identifiers
to its personas' rows (and leaves others alone), and their JSON."""

from __future__ import annotations

import json

from personalab.data.schema import Example
from personalab.engine.routes import Route
from personalab.routing import RoutingTable, personalizer_from_json, with_identifier


def test_with_identifier_prepends_with_one_space_and_leaves_no_identifier_alone():
    assert with_identifier("golf hotel", "a text") == "golf hotel a text"
    assert with_identifier("", "a text") == "a text"


def test_routing_table_applies_identifiers_and_cold_start_personas_keep_their_input():
    table = RoutingTable(default=Route.single("unified_token"), table={"a": Route.single("unified_token")},
                         identifiers={"a": "golf hotel"})
    row = Example("a", "a text", "good", "test")
    assert table.model_row(row) == Example("a", "golf hotel a text", "good", "test")
    new = Example("someone new", "a text", "good", "test")
    assert table.model_row(new) == new and table.identifier("someone new") == ""
    assert table.uses_default("someone new") and not table.uses_default("a")


def test_identifiers_round_trip_through_json_and_old_files_still_load():
    table = RoutingTable(default=Route.single("unified_token"), identifiers={"a": "golf hotel"})
    assert personalizer_from_json(json.loads(json.dumps(table.to_json()))) == table
    old = {"kind": "routing_table", "default": {"unified": 1.0}, "table": {"a": {"persona/a": 1.0}}}
    loaded = personalizer_from_json(old)
    assert loaded.identifiers == {} and loaded.model_row(Example("a", "x", "good", "test")).input == "x"
    assert "identifiers" not in loaded.to_json()  # other strategies' files are written as before
