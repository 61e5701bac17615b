"""A synthetic persona dataset whose personas come in latent groups of controllable clarity.

Each persona belongs to a hidden group. A group has a like/dislike sign per topic and its own
pool of profile attributes; ``separation`` says how much a persona follows its group (in both
preferences and profile), ``deviation`` how much it departs from it on its own. So the data
can show both situations the playbook meets: clusters that help (separation 1, small
deviation) and clusters that cannot (separation 0: groups mean nothing). Inputs are readable
English sentences about eight topics; the label says whether the persona likes the topic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import product

from personalab.data.schema import DatasetSpec, Example, Persona
from personalab.data.splits import assign_split
from personalab.errors import PersonalabError

CHOICES = ("dislike", "like")
# Every persona also has preferences of its own, so that separation 0 still gives each
# persona a consistent taste (learnable per persona) rather than coin flips.
IDIOSYNCRASY = 0.25

# topic -> (subjects, predicates); any subject + predicate makes a sentence on that topic.
TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "cooking": (
        ("The new ramen place downtown", "The street-food market by the river",
         "The tiny Sichuan kitchen on Elm Street", "Our local cooking school",
         "The family-run taqueria near the station", "The bakery on the corner"),
        ("serves a twelve-hour pork broth.", "just added a seasonal tasting menu.",
         "teaches a knife-skills class on Sundays.", "makes its own fermented chili paste.",
         "won a regional award for its dumplings.", "now sells fresh pasta by the kilo."),
    ),
    "football": (
        ("The home team", "Our striker", "The league's youngest captain", "The visiting side",
         "Our left winger", "The club's academy graduate"),
        ("scored twice in the last ten minutes of the derby.",
         "was praised for a tight defensive display.", "is chasing a place in the cup final.",
         "missed a penalty in extra time.", "drew a record crowd to the stadium.",
         "pressed high for the full ninety minutes."),
    ),
    "jazz": (
        ("The quartet at the Blue Note", "A young saxophonist from New Orleans",
         "The late-night trio at the corner bar", "The big band at the summer festival",
         "A pianist I saw last night", "The singer with the smoky voice"),
        ("plays standards with surprising new harmonies.",
         "improvised for twenty minutes without a break.",
         "swings hard on every up-tempo number.", "mixes bebop with a bit of Latin rhythm.",
         "earned a standing ovation after the ballad.", "sounds even better on vinyl."),
    ),
    "gardening": (
        ("My tomato patch", "The community garden on Fifth Street",
         "The rose bed by the front door", "Our new raised vegetable bed",
         "The herb box on the balcony", "The old apple tree in the yard"),
        ("needs mulching before the first frost.", "is finally getting enough sun.",
         "produced a huge harvest this year.", "was planted with only native species.",
         "thrives on homemade compost.", "attracts bees all summer long."),
    ),
    "startups": (
        ("A two-person fintech startup", "The company that makes smart thermostats",
         "A biotech spin-off from the university", "The delivery app everyone uses downtown",
         "A small climate-tech team", "An open-source database company"),
        ("just raised a seed round from angel investors.", "is hiring its first ten engineers.",
         "pivoted to a subscription business model.", "launched a beta with a thousand users.",
         "was acquired after only two years.", "pitched on stage at the demo day."),
    ),
    "hiking": (
        ("The ridge trail above the lake", "The coastal path to the lighthouse",
         "The forest loop near the campsite", "The mountain pass in the national park",
         "The canyon route", "The old pilgrim trail"),
        ("offers a view of three valleys at sunrise.",
         "takes about six hours with a steep final climb.", "is best walked in early autumn.",
         "has a hut where you can stay overnight.", "was reopened after the winter storms.",
         "passes a waterfall halfway up."),
    ),
    "video games": (
        ("The new open-world role-playing game", "An indie puzzle game made by two friends",
         "The latest racing game", "A cooperative survival game",
         "The remastered platformer from the nineties", "The strategy game everyone streams"),
        ("has a soundtrack that fits every level.", "lets you build your own base from scratch.",
         "got a huge free update this week.", "runs smoothly even on older consoles.",
         "hides dozens of secret areas.", "supports four-player split screen."),
    ),
    "opera": (
        ("The new production of La Traviata", "The soprano at the city opera house",
         "Tonight's performance of The Magic Flute", "The touring company from Vienna",
         "The modern staging of Carmen", "The baritone in the festival cast"),
        ("sold out within an hour.", "received glowing reviews from critics.",
         "brings a fresh take to a classic score.", "features a full live orchestra.",
         "held the final note for an astonishing time.",
         "is performed in the original language with subtitles."),
    ),
}
TOPIC_NAMES = tuple(TOPICS)
ITEMS: tuple[tuple[str, str], ...] = tuple(
    (topic, f"{subject} {predicate}")
    for topic, (subjects, predicates) in TOPICS.items()
    for subject, predicate in product(subjects, predicates)
)

NAMES = (
    "Maya Liam Aisha Tomas Yuki Noah Priya Lukas Fatima Oliver Sofia Mateo Hana Ethan Zara "
    "Jonas Amara Leo Ines Ravi Chloe Kofi Elena Sam Nadia Hugo Mei Omar Freya Diego"
).split()
# Attribute pools; each latent group owns a slice of each (see _group_pools).
ATTRIBUTE_POOLS: dict[str, tuple[str, ...]] = {
    "occupation": (
        "nurse", "teacher", "software engineer", "electrician", "architect", "accountant",
        "chef", "pharmacist", "journalist", "carpenter", "lawyer", "farmer",
        "graphic designer", "bus driver", "librarian", "dentist", "mechanic", "photographer",
        "firefighter", "data analyst", "physiotherapist", "translator", "baker", "pilot",
    ),
    "city": (
        "Porto", "Lyon", "Austin", "Osaka", "Leeds", "Krakow", "Denver", "Utrecht",
        "Valencia", "Tampere", "Bologna", "Seattle", "Ghent", "Glasgow", "Dresden",
        "Melbourne", "Montreal", "Bergen", "Graz", "Cork", "Adelaide", "Nashville", "Malmo",
        "Bilbao",
    ),
    "hobby": (
        "painting watercolours", "playing chess", "restoring old bikes", "birdwatching",
        "knitting", "rock climbing", "fishing", "running marathons",
        "volunteering at a shelter", "building model trains", "swimming in the sea",
        "learning languages", "doing pottery", "cycling", "reading crime novels",
        "playing the guitar", "sailing", "doing yoga", "writing poetry",
        "tinkering with electronics", "doing crosswords", "dancing salsa", "visiting museums",
        "woodworking",
    ),
    "age_band": ("18-24", "25-34", "35-44", "45-54", "55-64", "65-74"),
}


@dataclass(frozen=True)
class SynthConfig:
    """How to generate a synthetic persona dataset."""

    n_personas: int = 24
    """Number of personas."""
    n_groups: int = 4
    """Number of latent groups the personas are drawn from (balanced sizes)."""
    separation: float = 1.0
    """In [0, 1]: how distinct the groups are. 1: a persona's profile attributes come from
    its group's own pool and its preferences follow its group's; 0: groups mean nothing."""
    deviation: float = 0.2
    """>= 0: how far each persona's preferences depart from its group's (Gaussian noise)."""
    examples_per_persona: int = 40
    """Distinct inputs rated by each persona (the same sentence may go to many personas)."""
    seed: int = 0
    """Seed of every random choice: the same config always gives the same dataset."""
    label_noise: float = 0.05
    """Probability that a label is flipped, as annotators sometimes contradict themselves."""
    leniency: float = 0.0
    """>= 0: how much personas differ individually in how readily they say "like" whatever the
    topic (a per-persona shift, Gaussian with this scale, of every preference), as some
    annotators rate everything offensive and others nothing. 0: no such shift."""

    def __post_init__(self) -> None:
        _require(self.n_personas >= 1, f"n_personas must be >= 1, got {self.n_personas}")
        _require(self.n_groups >= 1, f"n_groups must be >= 1, got {self.n_groups}")
        _require(0 <= self.separation <= 1, f"separation must be in [0, 1]: {self.separation}")
        _require(self.deviation >= 0, f"deviation must be >= 0, got {self.deviation}")
        noise = self.label_noise
        _require(0 <= noise <= 0.5, f"label_noise must be in [0, 0.5], got {noise}")
        _require(self.leniency >= 0, f"leniency must be >= 0, got {self.leniency}")
        _require(
            1 <= self.examples_per_persona <= len(ITEMS),
            f"examples_per_persona must be in 1..{len(ITEMS)}, got {self.examples_per_persona}",
        )


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise PersonalabError(message)


def synthesize(config: SynthConfig) -> tuple[DatasetSpec, list[Persona], list[Example]]:
    """Generate the dataset; write it with ``personalab.data.write_dataset``."""
    rng = random.Random(config.seed)
    group_signs = _group_signs(rng, config.n_groups)
    pools = _group_pools(rng, config.n_groups)
    groups = [i % config.n_groups for i in range(config.n_personas)]
    rng.shuffle(groups)
    width = len(str(config.n_personas - 1))
    personas, examples = [], []
    for index, group in enumerate(groups):
        persona_id = f"p{index:0{width}d}"
        personas.append(_persona(rng, persona_id, group, pools, config))
        preferences = _preferences(rng, group_signs[group], config)
        examples += _examples(rng, persona_id, preferences, config)
    name = (
        f"synth-{config.n_personas}p-{config.n_groups}g-sep{config.separation:g}"
        f"-dev{config.deviation:g}-seed{config.seed}" + (f"-len{config.leniency:g}" if config.leniency else "")
    )
    return DatasetSpec(name=name, choices=CHOICES), personas, examples


def _group_signs(rng: random.Random, n_groups: int) -> list[list[int]]:
    """A like (+1) / dislike (-1) per topic for each group, groups as different as possible.

    Random patterns could coincide; ask for at least 3 differing topics between any two
    groups, and lower the bar only when that many distinct patterns cannot be found.
    """
    for min_distance in (3, 2, 1, 0):
        patterns: list[list[int]] = []
        for _ in range(2000):
            candidate = [rng.choice((-1, 1)) for _ in TOPIC_NAMES]
            if all(_differences(candidate, p) >= min_distance for p in patterns):
                patterns.append(candidate)
            if len(patterns) == n_groups:
                return patterns
    raise AssertionError("unreachable: distance 0 always succeeds")


def _differences(a: list[int], b: list[int]) -> int:
    return sum(x != y for x, y in zip(a, b))


def _group_pools(rng: random.Random, n_groups: int) -> list[dict[str, list[str]]]:
    """Each group's own slice of every attribute pool (disjoint while there are enough)."""
    pools: list[dict[str, list[str]]] = [{} for _ in range(n_groups)]
    for attribute, values in ATTRIBUTE_POOLS.items():
        shuffled = list(values)
        rng.shuffle(shuffled)
        for group in range(n_groups):
            own = shuffled[group::n_groups] or [shuffled[group % len(shuffled)]]
            pools[group][attribute] = own
    return pools


def _persona(
    rng: random.Random,
    persona_id: str,
    group: int,
    pools: list[dict[str, list[str]]],
    config: SynthConfig,
) -> Persona:
    """A persona whose attributes come from its group's pool with probability = separation."""
    attributes: dict = {"name": rng.choice(NAMES)}
    for attribute, shared in ATTRIBUTE_POOLS.items():
        own = rng.random() < config.separation
        attributes[attribute] = rng.choice(pools[group][attribute] if own else shared)
    low, high = (int(x) for x in attributes["age_band"].split("-"))
    attributes["age"] = rng.randint(low, high)
    # For analysis only (e.g. scoring a clustering): never give it to a model.
    attributes["latent_group"] = group
    return Persona(persona_id, _profile_text(attributes), attributes)


def _profile_text(attributes: dict) -> str:
    occupation = attributes["occupation"]
    article = "an" if occupation[0] in "aeiou" else "a"
    return (
        f"{attributes['name']} is {article} {attributes['age']}-year-old {occupation} from "
        f"{attributes['city']} who spends weekends {attributes['hobby']}."
    )


def _preferences(rng: random.Random, signs: list[int], config: SynthConfig) -> dict[str, float]:
    """Per topic: > 0 likes it. The group's sign weighted by separation, plus own noise, plus
    the persona's leniency (drawn only when asked for, so that datasets without it stay as
    they were for the same seed)."""
    shift = config.leniency * rng.gauss(0.0, 1.0) if config.leniency else 0.0
    return {
        topic: config.separation * sign
        + config.deviation * rng.gauss(0.0, 1.0)
        + IDIOSYNCRASY * rng.gauss(0.0, 1.0)
        + shift
        for topic, sign in zip(TOPIC_NAMES, signs)
    }


def _examples(
    rng: random.Random, persona_id: str, preferences: dict[str, float], config: SynthConfig
) -> list[Example]:
    items = rng.sample(ITEMS, config.examples_per_persona)  # distinct inputs per persona
    examples = []
    for topic, sentence in items:
        likes = (preferences[topic] > 0) != (rng.random() < config.label_noise)
        split = assign_split(persona_id, sentence)
        examples.append(Example(persona_id, sentence, CHOICES[likes], split))
    if not any(e.split == "train" for e in examples):
        # A persona must have something to train on; rare unless examples_per_persona is tiny.
        first = examples[0]
        examples[0] = Example(first.persona_id, first.input, first.output, "train")
    return examples
