"""The closed vocabulary of the zoo's text world: who and what exists, and the facts that never change."""

from __future__ import annotations

GIRLS = (
    "Mia", "Ava", "Lily", "Emma", "Zoe", "Nora", "Ella", "Ruby",
    "Lucy", "Anna", "Rosa", "Maya", "Ivy", "Lena", "Sara", "Tara",
)  # fmt: skip
BOYS = (
    "Leo", "Max", "Sam", "Tom", "Ben", "Jack", "Noah", "Finn",
    "Owen", "Eli", "Luke", "Omar", "Ravi", "Hugo", "Theo", "Adam",
)  # fmt: skip
NAMES = GIRLS + BOYS

OBJECTS = (
    "cup", "hat", "ball", "book", "box", "key", "kite", "bag", "shoe", "sock",
    "spoon", "bowl", "lamp", "coat", "map", "drum", "bell", "doll", "pen", "plate",
    "scarf", "ring", "boat", "brush", "clock", "basket", "blanket", "candle", "jar", "rope",
)  # fmt: skip
COLOURS = (
    "red", "blue", "green", "yellow", "white", "black", "pink", "purple", "orange", "brown", "grey",
)  # fmt: skip
PLACES = (
    "kitchen", "garden", "hall", "bedroom", "attic", "barn", "shed", "park", "library", "classroom",
    "shop", "forest", "yard", "cellar", "market", "bakery", "garage", "playroom", "office", "cabin",
)  # fmt: skip
ANIMALS = ("dog", "cat", "bird", "duck", "horse", "goat", "frog", "fox", "owl", "rabbit", "mouse", "hen")  # fmt: skip

# Facts every story states the same way, so a question about them is answerable from the world alone.
NATURE_COLOURS = {
    "sky": "blue", "grass": "green", "snow": "white", "sun": "yellow", "mud": "brown",
    "rose": "red", "lemon": "yellow", "plum": "purple", "carrot": "orange", "cloud": "white",
    "night": "black", "sea": "blue",
}  # fmt: skip
PETS = {name: ANIMALS[(i * 5) % len(ANIMALS)] for i, name in enumerate(NAMES)}

# Code words exist only as needle keys, never in stories, so a key names nothing but its value.
NEEDLE_KEYS = (
    "falcon", "harbor", "comet", "maple", "ember", "glacier", "lantern", "meadow", "orbit", "pepper",
    "quartz", "raven", "saffron", "tundra", "willow", "zephyr", "cobalt", "delta", "echo", "fable",
    "granite", "jasper", "kestrel", "nectar",
)  # fmt: skip
NEEDLE_VALUES = NAMES + OBJECTS + COLOURS

# Valenced words: index 0 negative, index 1 positive; both lists of each pair have the same length.
ADJECTIVES = (
    ("awful", "terrible", "boring", "dull", "sad", "gloomy", "nasty", "ugly", "rude", "horrible",
     "dirty", "noisy", "bitter", "stale", "messy", "dreadful", "poor", "miserable"),
    ("lovely", "wonderful", "great", "happy", "pleasant", "delightful", "charming", "beautiful",
     "cheerful", "friendly", "fun", "sweet", "cozy", "perfect", "excellent", "gentle", "tasty", "superb"),
)  # fmt: skip
VERBS = (
    ("hated", "disliked", "dreaded", "regretted", "loathed", "resented"),
    ("loved", "enjoyed", "liked", "adored", "admired", "praised"),
)
NOUNS = (
    ("mess", "disaster", "failure", "bore", "nightmare", "letdown"),
    ("joy", "delight", "treat", "pleasure", "success", "gem"),
)
REACTIONS = (
    ("frowned", "cried", "sighed", "groaned", "sulked", "grumbled"),
    ("smiled", "laughed", "cheered", "grinned", "clapped", "beamed"),
)
# Things a review can be about; none of them carries sentiment by itself.
OCCASIONS = (
    "party", "picnic", "trip", "show", "game", "song", "meal", "soup", "cake", "visit",
    "play", "walk", "lesson", "story", "dinner", "concert", "film", "bread", "ride", "fair",
)  # fmt: skip
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def a_or_an(phrase: str) -> str:
    """`phrase` with its indefinite article ("an orange cup", "a red cup")."""
    return f"an {phrase}" if phrase[0] in "aeiou" else f"a {phrase}"
