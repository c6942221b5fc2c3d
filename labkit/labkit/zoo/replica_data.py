"""Replicas of the hub data sets the paper configs name, laid out as their hub repositories are.

Each replica is a directory that `datasets.load_dataset(dir, config)` reads as it reads the hub repo:
a README whose YAML front matter declares the original's configs (data files per split) and features,
and data files in the original's formats and paths (parquet; C4's `json.gz` shards, so streaming reads
only the shards it needs). Column names, types and label conventions are the original's (SST-2's test
labels of -1, ARC's numeric choice labels on some items, wikitext's blank and ` = Heading = ` rows);
the text is the zoo world's. The README says it is a replica.
"""

from __future__ import annotations

import gzip
import io
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from datasets import ClassLabel, Dataset, Features, Image, List, Value

from labkit.errors import ConfigError
from labkit.zoo.shapes import shapes_arrays
from labkit.zoo.world import GENERATORS
from labkit.zoo.world_stories import story_text
from labkit.zoo.world_tokens import tokenize

NOTE = (
    "REPLICA for rehearsal only, built offline by labkit.zoo: the configs, splits, columns, types and "
    "label conventions of {hub_id}, filled with the labkit zoo world. Not the real data; no result "
    "made with it is a result."
)
CIFAR10_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
TEXT = Features({"text": Value("string")})
SST2 = Features(
    {
        "sentence": Value("string"),
        "label": ClassLabel(names=["negative", "positive"]),
        "idx": Value("int32"),
    }
)
ARC = Features(
    {
        "id": Value("string"),
        "question": Value("string"),
        "choices": {"text": List(Value("string")), "label": List(Value("string"))},
        "answerKey": Value("string"),
    }
)
C4 = Features({"text": Value("string"), "timestamp": Value("string"), "url": Value("string")})
CIFAR10 = Features({"img": Image(), "label": ClassLabel(names=list(CIFAR10_NAMES))})
# Articles per wikitext split: validation and test are the same articles in -2 and -103, as there.
# Validation holds about 144k replica tokens: AvalancheLLM's paper config draws its wikitext-103
# slices from a pool of the first 500 windows of 256 tokens (128k), so the paper path fits uncapped.
WIKI_ARTICLES = {"2": {"train": 40, "validation": 480, "test": 12}, "103": {"train": 120}}
# Non-raw configs keep this many most frequent train words and spell the rest `<unk>`: the world has
# about 255 distinct words, so about 1.5 % of -2's train words become `<unk>`, fewer of -103's.
WIKI_UNK_VOCAB = {"2": 200, "103": 230}
SST2_ROWS = {"train": 4000, "validation": 872, "test": 1821}
ARC_ROWS = {
    "ARC-Challenge": {"train": 300, "validation": 100, "test": 300},
    "ARC-Easy": {"train": 300, "validation": 100, "test": 300},
}
# Shards, documents per shard: a shard holds more than one 256-row read, as a real C4 shard does.
C4_SHARDS = {"train": (4, 300), "validation": (4, 300)}
TINYSTORIES_ROWS = {"train": (4, 500), "validation": (1, 200)}  # shards, rows per shard
CIFAR10_ROWS = {"train": 2000, "test": 500}


class _Repo:
    """Data files and the README front matter of one replica repository being written."""

    def __init__(self, out: Path, hub_id: str):
        self.out, self.hub_id = Path(out), hub_id
        self.configs: list[dict[str, Any]] = []
        self.infos: list[dict[str, Any]] = []
        self.rows: dict[str, dict[str, int]] = {}

    def add_config(
        self, name: str, features: Features, files: dict[str, list[tuple[str, Dataset]]]
    ) -> None:
        """Write config `name`: each split's (relative path, rows) files, in the original's format."""
        data_files = []
        for split, parts in files.items():
            for rel, rows in parts:
                path = self.out / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                if rel.endswith(".json.gz"):
                    _write_json_gz(path, rows)
                else:
                    rows.to_parquet(str(path))
            paths = [rel for rel, _ in parts]
            data_files.append({"split": split, "path": paths[0] if len(paths) == 1 else paths})
            self.rows.setdefault(name, {})[split] = sum(rows.num_rows for _, rows in parts)
        self.configs.append({"config_name": name, "data_files": data_files})
        self.infos.append({"config_name": name, "features": features._to_yaml_list()})

    def finish(self) -> dict[str, Any]:
        """Write the README (front matter + replica notice) and return the zoo card fields."""
        note = NOTE.format(hub_id=self.hub_id)
        front = yaml.safe_dump(
            {"configs": self.configs, "dataset_info": self.infos}, sort_keys=False
        )
        readme = f"---\n{front}---\n\n# Replica of {self.hub_id}\n\n{note}\n"
        (self.out / "README.md").write_text(readme, encoding="utf-8")
        return {"replica": True, "replica_of": self.hub_id, "note": note, "rows": self.rows}


def _write_json_gz(path: Path, rows: Dataset) -> None:
    """JSON lines, gzip with no name or time in its header, so the same rows give the same bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        for row in rows:
            gz.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    path.write_bytes(buf.getvalue())


def _shards(
    stem: str, rows: list[dict], n_shards: int, features: Features, suffix: str = ".parquet"
) -> list[tuple[str, Dataset]]:
    """`rows` cut into `n_shards` files named `<stem>-0000i-of-0000n<suffix>`, as hub repos name them."""
    per = -(-len(rows) // n_shards)
    return [
        (
            f"{stem}-{i:05d}-of-{n_shards:05d}{suffix}",
            Dataset.from_list(rows[i * per : (i + 1) * per], features=features),
        )
        for i in range(n_shards)
    ]


def _one(stem: str, rows: list[dict], features: Features) -> list[tuple[str, Dataset]]:
    return _shards(stem, rows, 1, features)


def _spaced(text: str) -> str:
    """World text in wikitext's tokenised spelling: tokens split by spaces, hyphens as ` @-@ `."""
    return " ".join(tokenize(text)).replace(" - ", " @-@ ")


def _article(rng: random.Random) -> list[str]:
    """One wikitext article: a ` = Title = ` row, sections of ` = = Heading = = ` and paragraphs,
    blank rows around every heading (wikitext's rows are lines ending in newline, blanks empty)."""
    story = story_text(rng)
    rows = ["", f" = {' '.join(tokenize(story)[3:6])} = \n", ""]
    for s in range(rng.randint(1, 3)):
        if s:
            rows += [f" = = Part {s + 1} = = \n", ""]
        rows += [f" {_spaced(par)} \n" for par in story_text(rng).split("\n")]
        rows.append("")
    return rows


def _unk(rows: list[str], keep: set[str]) -> list[str]:
    """The non-raw spelling: every word outside `keep` becomes `<unk>`."""
    return [
        " ".join(w if w in keep or not w.isalpha() else "<unk>" for w in r.split(" ")) for r in rows
    ]


def build_wikitext(out: Path, seed: int) -> dict[str, Any]:
    """Salesforce/wikitext: wikitext-{2,103}-{raw-v1,v1}, splits test/train/validation, column `text`."""
    repo = _Repo(out, "Salesforce/wikitext")
    rng = random.Random(seed)

    def split_rows(n: int) -> list[str]:
        return [row for _ in range(n) for row in _article(rng)]

    shared = {split: split_rows(WIKI_ARTICLES["2"][split]) for split in ("validation", "test")}
    train = {"2": split_rows(WIKI_ARTICLES["2"]["train"])}
    train["103"] = train["2"] + split_rows(WIKI_ARTICLES["103"]["train"])
    for size in ("2", "103"):
        counts: dict[str, int] = {}
        for row in train[size]:
            for word in row.split():
                counts[word] = counts.get(word, 0) + 1
        keep = set(sorted(counts, key=lambda w: (-counts[w], w))[: WIKI_UNK_VOCAB[size]])
        for raw in (True, False):
            name = f"wikitext-{size}-raw-v1" if raw else f"wikitext-{size}-v1"
            splits = {
                "test": shared["test"],
                "train": train[size],
                "validation": shared["validation"],
            }
            files = {
                split: _one(
                    f"{name}/{split}",
                    [{"text": t} for t in (rows if raw else _unk(rows, keep))],
                    TEXT,
                )
                for split, rows in splits.items()
            }
            repo.add_config(name, TEXT, files)
    return repo.finish()


def _sst2_sentence(text: str) -> str:
    """SST-2's spelling: lower case, tokens split by spaces, a trailing space."""
    return " ".join(tokenize(text.lower())) + " "


def build_glue(out: Path, seed: int) -> dict[str, Any]:
    """nyu-mll/glue, config sst2: `sentence`, `label` (0 negative, 1 positive; -1 on test), `idx`."""
    repo = _Repo(out, "nyu-mll/glue")
    rng, seen = random.Random(seed), set()
    files = {}
    for split, n in SST2_ROWS.items():
        rows = GENERATORS["sentiment"](rng, split, n, seen)
        for row in rows:
            row["sentence"] = _sst2_sentence(row["sentence"])
            if split == "test":
                row["label"] = -1
        files[split] = _one(f"sst2/{split}", rows, SST2)
    repo.add_config("sst2", SST2, files)
    return repo.finish()


def _arc_conventions(rows: list[dict]) -> list[dict]:
    """ARC's label conventions: some items label choices 1-4 instead of A-D, some have 3 choices."""
    for i, row in enumerate(rows):
        ch = row["choices"]
        if i % 15 == 14:  # drop the last choice that is not the answer
            drop = max(j for j, lab in enumerate(ch["label"]) if lab != row["answerKey"])
            answer = ch["text"][ch["label"].index(row["answerKey"])]
            texts = [t for j, t in enumerate(ch["text"]) if j != drop]
            labels = ["A", "B", "C", "D"][: len(texts)]
            row["choices"] = {"text": texts, "label": labels}
            row["answerKey"] = labels[texts.index(answer)]
        if i % 10 == 9:
            numeric = {lab: str(j + 1) for j, lab in enumerate(row["choices"]["label"])}
            row["choices"]["label"] = [numeric[lab] for lab in row["choices"]["label"]]
            row["answerKey"] = numeric[row["answerKey"]]
    return rows


def build_ai2_arc(out: Path, seed: int) -> dict[str, Any]:
    """allenai/ai2_arc: ARC-Challenge and ARC-Easy, `id`, `question`, `choices{text,label}`, `answerKey`."""
    repo = _Repo(out, "allenai/ai2_arc")
    rng, seen = random.Random(seed), set()
    for name, sizes in ARC_ROWS.items():
        files = {
            split: _one(
                f"{name}/{split}", _arc_conventions(GENERATORS["mcq"](rng, split, n, seen)), ARC
            )
            for split, n in sizes.items()
        }
        repo.add_config(name, ARC, files)
    return repo.finish()


def build_c4(out: Path, seed: int) -> dict[str, Any]:
    """allenai/c4, config en: `text`, `timestamp`, `url` in `en/c4-<split>.0000i-of-0000n.json.gz`."""
    repo = _Repo(out, "allenai/c4")
    rng = random.Random(seed)
    files = {}
    for split, (n_shards, per) in C4_SHARDS.items():
        rows = [
            {
                "text": "\n".join(story_text(rng) for _ in range(rng.randint(1, 3))),
                "timestamp": f"2019-04-{rng.randint(18, 26):02d}T{rng.randint(0, 23):02d}:"
                f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z",
                "url": f"https://www.example-{rng.randint(0, 9999):04d}.org/story/{i}",
            }
            for i in range(n_shards * per)
        ]
        shards = _shards(f"en/c4-{split}", rows, n_shards, C4, ".json.gz")
        # C4 names its shards `c4-train.00000-of-01024.json.gz` (a dot before the index).
        files[split] = [(rel.replace(f"c4-{split}-", f"c4-{split}."), ds) for rel, ds in shards]
    repo.add_config("en", C4, files)
    return repo.finish()


def build_tinystories(out: Path, seed: int) -> dict[str, Any]:
    """roneneldan/TinyStories: default config, splits train/validation, column `text`."""
    repo = _Repo(out, "roneneldan/TinyStories")
    rng = random.Random(seed)
    files = {
        split: _shards(
            f"data/{split}", [{"text": story_text(rng)} for _ in range(n * per)], n, TEXT
        )
        for split, (n, per) in TINYSTORIES_ROWS.items()
    }
    repo.add_config("default", TEXT, files)
    return repo.finish()


def build_cifar10(out: Path, seed: int) -> dict[str, Any]:
    """uoft-cs/cifar10, config plain_text: `img` (32x32 PNG), `label` with CIFAR-10's class names.

    The images are `local:shapes10`'s (10 classes of shapes and colours) under CIFAR-10's names."""
    repo = _Repo(out, "uoft-cs/cifar10")
    files = {}
    for (split, n), child in zip(
        CIFAR10_ROWS.items(), np.random.SeedSequence(seed).spawn(2), strict=True
    ):
        images, labels = shapes_arrays(n, np.random.default_rng(child))
        rows = Dataset.from_dict({"img": list(images), "label": labels}, features=CIFAR10)
        files[split] = [(f"plain_text/{split}-00000-of-00001.parquet", rows)]
    repo.add_config("plain_text", CIFAR10, files)
    return repo.finish()


BUILDERS: dict[str, Callable[[Path, int], dict[str, Any]]] = {
    "replica-wikitext": build_wikitext,
    "replica-glue": build_glue,
    "replica-ai2_arc": build_ai2_arc,
    "replica-c4": build_c4,
    "replica-tinystories": build_tinystories,
    "replica-cifar10": build_cifar10,
}


def build_replica_dataset(
    name: str, size: str, seed: int, out_dir: Path, progress: Callable[[int, int, str], None]
) -> dict[str, Any]:
    """Write replica data set `name` (one size, `default`) into `out_dir`; return its card fields."""
    if name not in BUILDERS:
        raise ConfigError(f"unknown replica data set {name!r}; known: {', '.join(BUILDERS)}")
    progress(0, 1, "writing files")
    card = BUILDERS[name](Path(out_dir), seed)
    progress(1, 1, "done")
    return card
