"""End to end on synthetic personas with the real MiniLM: clear latent groups give a clearly
higher silhouette than meaningless ones, and the clusters found are the latent groups.

Both datasets draw their inputs from the generator's fixed sentence pool, so the session
cache embeds each sentence once. Eighty rows per persona (about 48 train rows) keep the
label contrast from being swamped by which sentences a persona happened to rate.
"""

from __future__ import annotations

import pytest
from sklearn.metrics import adjusted_rand_score

from personalab.cluster import cluster_personas
from personalab.data.schema import Dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.embed import persona_embeddings

GROUPS = 4


def synthetic(separation: float) -> tuple[Dataset, list[int]]:
    config = SynthConfig(n_personas=24, n_groups=GROUPS, separation=separation,
                         deviation=0.1, examples_per_persona=80, seed=1)
    spec, personas, examples = synthesize(config)
    dataset = Dataset(spec, {p.persona_id: p for p in personas}, examples)
    return dataset, [p.attributes["latent_group"] for p in personas]


@pytest.fixture(scope="module")
def separated():
    dataset, groups = synthetic(separation=1.0)
    return persona_embeddings(dataset, source="inputs"), groups


@pytest.fixture(scope="module")
def unseparated():
    dataset, groups = synthetic(separation=0.0)
    return persona_embeddings(dataset, source="inputs"), groups


def test_separated_groups_have_a_clearly_higher_silhouette(separated, unseparated):
    clear = cluster_personas(separated[0], k=GROUPS)
    vague = cluster_personas(unseparated[0], k=GROUPS)
    assert clear.silhouette > vague.silhouette + 0.2, (clear.silhouette, vague.silhouette)
    assert clear.quality in ("reasonable", "strong") and vague.quality == "poor"


@pytest.mark.parametrize("method", ["kmeans", "agglomerative"])
def test_clusters_found_are_the_latent_groups(separated, unseparated, method):
    embeddings, groups = separated
    assert adjusted_rand_score(groups, cluster_personas(embeddings, method=method,
                                                        k=GROUPS).labels) > 0.9
    embeddings, groups = unseparated
    assert adjusted_rand_score(groups, cluster_personas(embeddings, method=method,
                                                        k=GROUPS).labels) < 0.3


def test_k_chosen_by_silhouette_is_the_number_of_groups(separated):
    result = cluster_personas(separated[0], k_range=(2, 8))
    assert result.k == GROUPS, result.silhouette_by_k
