"""What an export holds, from the personalizer alone: one adapter per distinct route, safe
folder names whatever the persona ids, and a routing document covering every persona."""

from __future__ import annotations

import re

from personalab.engine.routes import Route
from personalab.export.plan import distinct_routes, folder_name, routing_document, served_name
from personalab.routing import Ensemble, RoutingTable

SAFE = re.compile(r"[a-z0-9_-]+")


def test_a_single_adapter_keeps_its_bank_name_and_a_mixture_gets_a_digest():
    assert served_name(Route.single("unified")) == "unified"
    assert folder_name(Route.single("unified")) == "unified"
    mixture = Route({"persona/a": 0.7, "persona/b": 0.3})
    assert served_name(mixture).startswith("mixture/")
    assert folder_name(mixture) == served_name(mixture).replace("/", "--")
    assert folder_name(Route({"persona/b": 0.3, "persona/a": 0.7})) == folder_name(mixture)  # order-free
    assert folder_name(Route({"persona/a": 0.6, "persona/b": 0.4})) != folder_name(mixture)


def test_one_adapter_at_another_weight_is_a_mixture_to_merge():
    assert served_name(Route({"persona/a": 0.5})).startswith("mixture/")


def test_folder_names_are_flat_and_safe_for_any_persona_id():
    ids = ["../../etc", "a b/c", "Émile", "A", "a", "lora.weight", "🙂", "x" * 300]
    folders = [folder_name(Route.single(f"persona/{pid}")) for pid in ids]
    assert all(SAFE.fullmatch(f) and len(f) < 80 for f in folders)
    assert len(set(folders)) == len(ids)  # "A" and "a" differ too (case-insensitive file systems)


def test_routing_table_document_covers_every_persona_and_the_default():
    mixture = Route({"persona/a": 0.5, "persona/b": 0.5})
    table = RoutingTable(default=Route.single("unified"),
                         table={"a": Route.single("persona/a"), "b": mixture, "c": mixture})
    document = routing_document(table, ["a", "b", "c", "d"])
    own = folder_name(Route.single("persona/a"))
    assert own.startswith("persona--a-")  # the bank's slug and digest, flattened
    assert document["personas"] == {"a": own, "b": folder_name(mixture), "c": folder_name(mixture), "d": "unified"}
    assert document["default"] == "unified" and document["default_personas"] == ["d"]
    assert set(document["adapters"]) == {"unified", folder_name(Route.single("persona/a")), folder_name(mixture)}
    assert document["adapters"][folder_name(mixture)] == {"persona/a": 0.5, "persona/b": 0.5}
    assert document["router"] is None


def test_distinct_routes_are_listed_once_defaults_first():
    table = RoutingTable(default=Route.single("unified"), table={"a": Route.single("unified"), "b": Route.single("persona/b")})
    assert distinct_routes(table, ["a", "b"], extra=[Route.single("cluster/0")]) == [
        Route.single("unified"), Route.single("persona/b"), Route.single("cluster/0")]


def test_ensemble_document_gives_each_persona_its_members_weights_and_space():
    first = RoutingTable(default=Route.single("unified"))
    second = RoutingTable(default=Route.single("unified"), table={"a": Route.single("cluster/0")})
    ensemble = Ensemble([(first, 0.6), (second, 0.4)], space="prob")
    document = routing_document(ensemble, ["a", "b"])
    assert document["kind"] == "ensemble" and "note" in document
    assert document["personas"]["a"] == {"space": "prob", "members": [
        {"adapter": "unified", "weight": 0.6}, {"adapter": folder_name(Route.single("cluster/0")), "weight": 0.4}]}
    assert document["personas"]["b"]["members"][1]["adapter"] == "unified"
    assert document["default"]["members"] == [{"adapter": "unified", "weight": 0.6}, {"adapter": "unified", "weight": 0.4}]
    assert document["default_personas"] == ["a", "b"]  # a member routes each of them by its default
