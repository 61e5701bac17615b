"""Tiny random base models for tests and demos, built in code and saved as ordinary model folders.

A tiny model is a real ``transformers`` architecture at toy size (a BERT-style encoder, a
Qwen2-style causal LM) with a tokenizer made here, deterministically, from a small built-in
English corpus (a WordPiece vocabulary of its words and characters; a trained byte-level
BPE). It is saved like any downloaded model (config.json, model.safetensors, tokenizer
files) so that it loads through exactly the same code path as a real one. The
names ``tiny-classifier`` / ``tiny-causal-lm`` build once into a cache folder and are reused.
"""

from __future__ import annotations

import os
import string
import tempfile
from pathlib import Path

import torch
import transformers
from tokenizers.implementations import ByteLevelBPETokenizer
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer

from personalab.data.atomic import move_folder_into_place, staging_folder

# Bump when a builder changes, so that caches of older tiny models are not reused silently.
TINY_VERSION = 1
# Large enough that random weights give peaked, clearly different scores per token and choice;
# at the usual 0.02 every output is nearly uniform and numeric tests could pass vacuously.
TINY_INIT_RANGE = 0.3

CORPUS = """\
The quick brown fox jumps over the lazy dog while the cat sleeps in the sun.
I love this movie; the story is great and the actors are wonderful.
I hate waiting in line, it is boring and a waste of my time.
This comment is rude and offensive, nobody should write like that online.
What a kind and thoughtful answer, thank you for your help!
She is a young teacher who lives in a big city and likes jazz music.
He is an older farmer from a small village who enjoys quiet mornings.
They are students who read books, play games and talk about politics.
The weather today is cold and rainy, but tomorrow will be warm and sunny.
Is this text polite or impolite? Answer yes or no, positive or negative.
The product arrived late and broken, so I want my money back.
Our team won the match after a long and difficult season.
Please explain how the new policy will affect families and workers.
Good morning! Could you tell me where the train station is?
The report shows that prices went up by ten percent last year.
A persona describes a person: their age, job, opinions and style of speech.
Annotators often disagree about what counts as toxic, funny or offensive.
Reading a good book on a rainy evening is one of my favourite things.
The doctor said that I should sleep more, eat well and walk every day.
Numbers like one, two, three, four, five, six, seven, eight, nine and ten.
"""

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def corpus_lines() -> list[str]:
    return CORPUS.splitlines()


def build_tiny_classifier(out_dir: str | Path, seed: int = 0) -> Path:
    """A 2-layer BERT encoder (hidden 32, 4 heads) without a head, plus a WordPiece tokenizer.

    Saved headless, like MiniLM, so that the classifier backend adds and seeds the head.
    """
    out_dir = Path(out_dir)
    tokenizer = _wordpiece_tokenizer(out_dir)
    config = transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=256,
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=TINY_INIT_RANGE,
    )
    _save_seeded_model(transformers.BertModel, config, seed, out_dir)
    return out_dir


def build_tiny_causal_lm(out_dir: str | Path, seed: int = 0, chat_template: bool = True) -> Path:
    """A 2-layer Qwen2 causal LM (hidden 64, 4 heads, 2 kv heads) with a byte-level BPE
    tokenizer; with ``chat_template`` the tokenizer carries a ChatML template and ends turns
    with ``<|im_end|>`` like Qwen instruct models."""
    out_dir = Path(out_dir)
    tokenizer = train_byte_level_tokenizer(chat_template)
    tokenizer.save_pretrained(str(out_dir))
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        initializer_range=TINY_INIT_RANGE,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    _save_seeded_model(transformers.Qwen2ForCausalLM, config, seed, out_dir)
    return out_dir


def _save_seeded_model(model_class, config, seed: int, out_dir: Path) -> None:
    # fork_rng: seeding must not disturb the caller's global random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    model.save_pretrained(str(out_dir))  # safetensors


def _wordpiece_tokenizer(out_dir: Path):
    vocab = wordpiece_vocab()
    with tempfile.TemporaryDirectory() as vocab_dir:
        # A vocab.txt is the one BERT tokenizer input every transformers version accepts.
        (Path(vocab_dir) / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tokenizer = transformers.BertTokenizerFast.from_pretrained(vocab_dir)
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def wordpiece_vocab() -> list[str]:
    """Special tokens, every ASCII and corpus character (word-initial and ``##`` continuation),
    and every corpus word: unseen words fall back to characters. Built directly rather than trained,
    because the tokenizers WordPiece trainer breaks ties differently from run to run."""
    normalizer, pre_tokenizer = BertNormalizer(lowercase=True), BertPreTokenizer()
    words = sorted(
        {
            word
            for line in corpus_lines()
            for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line))
        }
    )
    ascii_characters = string.ascii_lowercase + string.digits + string.punctuation
    characters = sorted({character for word in words for character in word} | set(ascii_characters))
    return (
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        + characters
        + ["##" + character for character in characters]
        + [word for word in words if len(word) > 1]
    )


def train_byte_level_tokenizer(chat_template: bool = True):
    """A byte-level BPE tokenizer (800 tokens) trained on the built-in corpus, Qwen-like: ChatML
    special tokens, and with ``chat_template`` a ChatML template and ``<|im_end|>`` as eos. Any
    text tokenizes (bytes are the fallback); ``bench/real_size.py`` pairs it with a larger model."""
    special_tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(
        corpus_lines(), vocab_size=800, min_frequency=1, special_tokens=special_tokens,
        show_progress=False,
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=trainer._tokenizer,  # the wrapped tokenizers.Tokenizer
        eos_token="<|im_end|>" if chat_template else "<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=special_tokens[1:],
    )
    if chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


TINY_BUILDERS = {
    "tiny-classifier": build_tiny_classifier,
    "tiny-causal-lm": build_tiny_causal_lm,
}


def tiny_cache_dir() -> Path:
    """``$PERSONALAB_CACHE/tiny`` when set, else ``~/.cache/personalab/tiny``."""
    root = os.environ.get("PERSONALAB_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "personalab") / "tiny"


def resolve_tiny(name: str, cache_dir: str | Path | None = None, seed: int = 0) -> Path:
    """The folder of tiny model ``name``, built on first use.

    The build goes to a temporary folder that is renamed into place, so a folder that exists
    is always complete, even when two processes race or one is killed mid-build.
    """
    if name not in TINY_BUILDERS:
        raise ValueError(f"unknown tiny model {name!r}; known: {sorted(TINY_BUILDERS)}")
    parent = Path(cache_dir) if cache_dir is not None else tiny_cache_dir()
    target = parent / f"{name}-seed{seed}-v{TINY_VERSION}"
    if target.is_dir():
        return target
    with staging_folder(parent, prefix=f".{target.name}-") as staging:
        built = staging / "model"
        built.mkdir()
        TINY_BUILDERS[name](built, seed=seed)
        try:
            move_folder_into_place(built, target)
        except OSError:
            if not target.is_dir():  # not a lost race: a real failure
                raise
    return target
