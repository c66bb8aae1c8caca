"""Example files built at run time from the project's shared data (never copied into the package).

Each builder reads files under a data root (``--data-root``, else ``$CHAINRULE_DATA``, else
``../shared/data`` from the working directory) and returns examples as dicts. An example may
carry ``"split": "pool"`` or ``"test"`` when the data has its own split (Multi30k: the
validation set is the demonstration pool, the 2016 Flickr test set the test set); otherwise the
harness splits them (:func:`chainrule.prompting.harness.split_examples`).

``analogy``      word pairs of one section of ``embeddings/questions-words.txt``
                 (``{x, y}``: Athens/Greece, amazing/amazingly, ...), each unordered pair once
``multi30k``     ``{de, en}`` caption pairs
``brown_genre``  ``{text, genre}``: 50-word excerpts of the Brown corpus and the genre of their
                 file (the letter of ``ca01`` ... ``cr09``); pool and test come from different files
``blimp``        ``{choices: [bad, good], good}``: BLiMP minimal pairs, as ``eval pairs`` reads them
``brown_tldr``   ``{text, summary}``: a Brown news story's sentences 2-6 as the text and its first
                 sentence (the lede) as the "summary" -- Brown has no headlines, and a lede is
                 the closest thing it holds to a one-sentence summary of what follows
"""

from __future__ import annotations

import gzip
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chainrule.errors import ConfigError, DataError

Example = dict[str, Any]

#: Brown's genre letters (the second letter of a file id) and NLTK's category names
BROWN_GENRES = {
    "a": "news", "b": "editorial", "c": "reviews", "d": "religion", "e": "hobbies",
    "f": "lore", "g": "belles lettres", "h": "government", "j": "learned", "k": "fiction",
    "l": "mystery", "m": "science fiction", "n": "adventure", "p": "romance", "r": "humor",
}


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The shared data directory: ``root``, ``$CHAINRULE_DATA`` or ``../shared/data``."""
    path = Path(root or os.environ.get("CHAINRULE_DATA") or Path("..") / "shared" / "data")
    if not path.is_dir():
        raise DataError(f"the data directory {str(path)!r} does not exist; pass --data-root DIR "
                        "(the folder holding embeddings/, multi30k/, brown/, blimp-dev/).")
    return path


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"{str(path)!r} is missing from the data directory; this task is built "
                        "from it.")
    return path


def analogy(root: Path, section: str) -> list[Example]:
    """The word pairs of one section of the analogy questions (each pair once, in file order)."""
    path = _need(root / "embeddings" / "questions-words.txt")
    seen: dict[tuple[str, str], None] = {}
    current = None
    for line in path.read_text("utf-8").splitlines():
        if line.startswith(":"):
            current = line[1:].strip()
            continue
        words = line.split()
        if current == section and len(words) == 4:
            seen.setdefault((words[0], words[1]))
            seen.setdefault((words[2], words[3]))
    if not seen:
        raise DataError(f"{path} has no section {section!r}.")
    return [{"x": a, "y": b} for a, b in seen]


def analogy_sections(root: Path) -> list[str]:
    path = _need(root / "embeddings" / "questions-words.txt")
    return [ln[1:].strip() for ln in path.read_text("utf-8").splitlines() if ln.startswith(":")]


def _gz_lines(path: Path) -> list[str]:
    with gzip.open(_need(path), "rt", encoding="utf-8") as f:
        return [ln.rstrip("\n") for ln in f]


def multi30k(root: Path, pool: str = "val", test: str = "test_2016_flickr") -> list[Example]:
    """German-English caption pairs: ``pool`` split for demonstrations, ``test`` for testing."""
    out = []
    for split, name in (("pool", pool), ("test", test)):
        de = _gz_lines(root / "multi30k" / f"{name}.de.gz")
        en = _gz_lines(root / "multi30k" / f"{name}.en.gz")
        if len(de) != len(en):
            raise DataError(f"multi30k/{name}: {len(de)} German but {len(en)} English lines.")
        out += [{"de": d.strip(), "en": e.strip(), "split": split} for d, e in zip(de, en)]
    return out


_SPACE_BEFORE = re.compile(r" ([,.;:?!)'])|(\() ")


def detokenize(words: list[str]) -> str:
    """Brown's tokens as running text: quotes (`` '') become ", no space before punctuation.

    >>> detokenize(["He", "said", "``", "no", "''", "."])
    'He said "no".'
    """
    text = " ".join(words).replace("``", '"').replace("''", '"')
    text = re.sub(r'" (.*?) "', r'"\1"', text)
    return _SPACE_BEFORE.sub(lambda m: m.group(1) or m.group(2), text)


def _brown_files(root: Path) -> list[tuple[str, list[list[str]]]]:
    """(file id, sentences as word lists) of every Brown file, from the NLTK zip."""
    path = _need(root / "brown" / "nltk-brown.zip")
    out = []
    with zipfile.ZipFile(path) as z:
        for name in sorted(z.namelist()):
            fid = name.rsplit("/", 1)[-1]
            if not re.fullmatch(r"c[a-r]\d\d", fid):
                continue
            sents = []
            for line in z.read(name).decode("utf-8").splitlines():
                if line.strip():
                    sents.append([t.rpartition("/")[0] or t for t in line.split()])
            out.append((fid, sents))
    return out


def brown_genre(root: Path, words: int = 50, per_file: int = 2) -> list[Example]:
    """Excerpts of about ``words`` words (whole sentences) labelled with their file's genre.

    Files alternate between pool and test (by their number), so no text is on both sides.
    """
    out = []
    for fid, sents in _brown_files(root):
        starts = [0] + [len(sents) * k // per_file for k in range(1, per_file)]
        for s in starts:
            chunk: list[str] = []
            for sent in sents[s:]:
                chunk += sent
                if len(chunk) >= words:
                    break
            out.append({"text": detokenize(chunk), "genre": BROWN_GENRES[fid[1]],
                        "file": fid, "split": "test" if int(fid[2:]) % 2 else "pool"})
    return out


def brown_tldr(root: Path, sentences: int = 5) -> list[Example]:
    """Brown news stories (ca01-ca44): sentences 2..1+``sentences`` and the first one."""
    out = []
    for fid, sents in _brown_files(root):
        if fid[1] != "a" or len(sents) < sentences + 1:
            continue
        out.append({"text": " ".join(detokenize(s) for s in sents[1 : 1 + sentences]),
                    "summary": detokenize(sents[0]), "file": fid})
    return out


def blimp(root: Path) -> list[Example]:
    """Every BLiMP-dev pair as a two-choice example (choices [bad, good]: a tie counts wrong,
    as in ``eval pairs``, which needs the good sentence strictly more probable)."""
    from chainrule.evaluation.pairs import read_pairs

    files = sorted(_need(root / "blimp-dev").glob("*.jsonl"))
    if not files:
        raise DataError(f"{root / 'blimp-dev'} holds no .jsonl files.")
    return [{"choices": [p.bad, p.good], "good": p.good, "uid": p.uid}
            for p in read_pairs(files)]


BUILDERS: dict[str, Callable[..., list[Example]]] = {
    "analogy": analogy, "multi30k": multi30k, "brown_genre": brown_genre,
    "brown_tldr": brown_tldr, "blimp": blimp,
}


def build(name: str, root: Path, args: dict[str, Any]) -> list[Example]:
    """Run builder ``name`` with the description's ``builder_args``."""
    if name not in BUILDERS:
        raise ConfigError(f"unknown builder {name!r}; the builders are {', '.join(BUILDERS)}.")
    try:
        return BUILDERS[name](root, **args)
    except TypeError as e:
        raise ConfigError(f"builder {name!r} does not take these arguments: {e}.") from None


__all__ = ["BROWN_GENRES", "BUILDERS", "analogy", "analogy_sections", "blimp", "brown_genre",
           "brown_tldr", "build", "data_root", "detokenize", "multi30k"]
