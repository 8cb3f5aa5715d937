"""Caption templates of the synthetic web (English, German, French, Spanish, junk) and the vectorised caption writer;
no I/O, no rendering.

Every caption a (slot, template, concept, texture) can produce is formatted once into a bank, so writing 10^6
captions is an array lookup; only junk captions, which carry random numbers ("IMG_2034.JPG"), are formatted per row.
Junk never contains a colour, shape, texture or digit word, nor a one-digit number; partial captions name the shape
or the colour, not both (or "handwritten digit" without which).
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from infra.localweb.concepts import COLOURS, CONCEPTS, DIGIT_WORDS, N_CONCEPTS, SHAPES, TEXTURES

SLOTS = ("en", "partial", "de", "fr", "es", "junk")
"""Caption slots, in the order `caption_slots` draws them; index 5 (junk) is formatted per row."""
SLOT_LANG = ("en", "en", "de", "fr", "es", None)
SLOT_KIND = ("concept", "partial", "concept", "concept", "concept", "junk")
JUNK = 5

_SHAPE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "en": (
        "a photo of a {colour} {shape}",
        "{colour} {shape}",
        "a {texture} {colour} {shape}",
        "{colour} {texture} {shape} on a white background",
        "my drawing: a {shape}, {colour}",
        "clip art of a {colour} {shape}",
        "a {colour} {shape} sticker",
        "the {colour} {shape} icon, {texture}",
        "hand-drawn {colour} {shape}",
        "{Colour} {Shape} Wall Decal",
        "close-up of a {colour} {shape} with a {texture} fill",
        "a {colour} {shape} on a plain background",
        "simple {colour} {shape} graphic",
        "photo: {colour} {shape} ({texture})",
        "A {colour} {shape} I made in paint",
        "{texture} {shape} in {colour}",
    ),
    "partial": ("a {shape}", "{shape} shape", "something {colour}", "a {texture} {shape}", "{Shape} clipart"),
    "de": (
        "Foto: {shape} in {colour}",
        "{shape} in {colour} auf weißem Hintergrund",
        "Zeichnung: {shape}, {colour}, {texture}",
        "Aufkleber {shape} in {colour}",
    ),
    "fr": (
        "photo : {shape} de couleur {colour}",
        "dessin d'enfant : {shape} de couleur {colour} sur fond blanc",
        "autocollant {shape} de couleur {colour}",
        "{shape} de couleur {colour}, motif {texture}",
    ),
    "es": (
        "foto: {shape} de color {colour}",
        "un dibujo: {shape} de color {colour} sobre fondo blanco",
        "pegatina {shape} de color {colour}",
        "{shape} de color {colour}, estampado {texture}",
    ),
}
_DIGIT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "en": (
        "handwritten digit {d}",
        "the number {word} written by hand",
        "a scanned handwritten {d}",
        "digit {d}, handwritten",
        "a hand-written number {word}",
        "handwriting sample: the digit {word}",
        "Handwritten {d} on paper",
    ),
    "partial": ("a handwritten digit", "some handwriting", "a number written by hand"),
    "de": ("Handgeschriebene Ziffer {d}", "die Zahl {word}, von Hand geschrieben"),
    "fr": ("chiffre {d} écrit à la main", "le nombre {word} écrit à la main"),
    "es": ("dígito {d} escrito a mano", "el número {word} escrito a mano"),
}
_WORDS = {
    "de": {
        "colour": ("Rot", "Orange", "Gelb", "Grün", "Blau", "Lila", "Rosa", "Schwarz"),
        "shape": ("Kreis", "Quadrat", "Dreieck", "Stern", "Sechseck", "Kreuz", "Herz", "Raute"),
        "texture": ("einfarbig", "gestreift", "gepunktet", "kariert"),
        "digit": ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"),
    },
    "fr": {
        "colour": ("rouge", "orange", "jaune", "vert", "bleu", "violet", "rose", "noir"),
        "shape": ("cercle", "carré", "triangle", "étoile", "hexagone", "croix", "cœur", "losange"),
        "texture": ("uni", "rayé", "à pois", "à carreaux"),
        "digit": ("zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"),
    },
    "es": {
        "colour": ("rojo", "naranja", "amarillo", "verde", "azul", "morado", "rosa", "negro"),
        "shape": ("círculo", "cuadrado", "triángulo", "estrella", "hexágono", "cruz", "corazón", "rombo"),
        "texture": ("liso", "a rayas", "de lunares", "a cuadros"),
        "digit": ("cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"),
    },
}
JUNK_TEMPLATES = (
    ("IMG_{n:04d}.JPG", "und"),
    ("DSC{n:05d}.jpg", "und"),
    ("dsc {n}", "und"),
    ("click here to enlarge", "en"),
    ("untitled", "en"),
    ("image", "en"),
    ("photo {m} of {k}", "en"),
    ("thumbnail", "en"),
    ("no description available", "en"),
    ("Screenshot 20{m}-{month:02d}-{day}", "und"),
    ("view larger", "en"),
    ("download now", "en"),
)
_ARTICLE = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")


def _fields(lang: str, concept_index: int, texture: int) -> dict[str, str]:
    c = CONCEPTS[concept_index]
    words = _WORDS.get(lang)
    if c.digit >= 0:
        word = words["digit"][c.digit] if words else DIGIT_WORDS[c.digit]
        return {"d": str(c.digit), "word": word}
    colour = words["colour"][COLOUR_INDEX[c.colour]] if words else c.colour
    shape = words["shape"][SHAPE_INDEX[c.shape]] if words else c.shape
    texture_word = words["texture"][texture] if words else TEXTURES[texture]
    return {
        "colour": colour,
        "shape": shape,
        "texture": texture_word,
        "Colour": colour.capitalize(),
        "Shape": shape.capitalize(),
    }


COLOUR_INDEX = {c: i for i, c in enumerate(COLOURS)}
SHAPE_INDEX = {s: i for i, s in enumerate(SHAPES)}


@lru_cache(maxsize=1)
def caption_bank() -> tuple[np.ndarray, np.ndarray]:
    """(bank, counts): bank[slot, template, concept, texture] is the caption (object array; slots 0-4),
    counts[slot, concept] how many templates that concept has in that slot. Built once per process."""
    t_max = max(len(t) for table in (_SHAPE_TEMPLATES, _DIGIT_TEMPLATES) for t in table.values())
    bank = np.empty((JUNK, t_max, N_CONCEPTS, len(TEXTURES)), dtype=object)
    counts = np.zeros((JUNK, N_CONCEPTS), dtype=np.int64)
    for slot in range(JUNK):
        name, lang = SLOTS[slot], SLOT_LANG[slot]
        for c in CONCEPTS:
            templates = (_DIGIT_TEMPLATES if c.digit >= 0 else _SHAPE_TEMPLATES)[name]
            counts[slot, c.index] = len(templates)
            for t, template in enumerate(templates):
                for x in range(len(TEXTURES)):
                    text = template.format(**_fields(lang, c.index, x))
                    bank[slot, t, c.index, x] = _ARTICLE.sub(r"\1n ", text) if lang == "en" else text
    return bank, counts


def write_captions(
    slots: np.ndarray, templates: np.ndarray, concepts: np.ndarray, textures: np.ndarray, numbers: np.ndarray
) -> list[str]:
    """One caption per row. `templates` are raw uint64 hashes (reduced modulo the slot's template count here);
    `numbers` (uint64) feed the junk templates' digits. All arrays have one entry per row."""
    bank, counts = caption_bank()
    out = np.empty(len(slots), dtype=object)
    concept_rows = slots != JUNK
    s, c = slots[concept_rows], concepts[concept_rows]
    t = (templates[concept_rows] % counts[s, c].astype(np.uint64)).astype(np.int64)
    out[concept_rows] = bank[s, t, c, textures[concept_rows]]
    for i in np.flatnonzero(~concept_rows):
        out[i] = junk_caption(int(templates[i]), int(numbers[i]))
    return out.tolist()


def junk_caption(template_hash: int, number_hash: int) -> str:
    """A caption with no concept word; the numbers in it come from `number_hash` and have at least two digits, so
    none reads as a digit concept ("photo 12 of 40", never "photo 8 of 9")."""
    template, _ = JUNK_TEMPLATES[template_hash % len(JUNK_TEMPLATES)]
    n, m, k = 1000 + number_hash % 9000, 10 + (number_hash >> 20) % 30, 40 + (number_hash >> 30) % 60
    return template.format(n=n, m=m, k=k, month=1 + k % 12, day=10 + m % 18)


def junk_lang(template_hash: np.ndarray) -> np.ndarray:
    """Language label of junk captions: 'en' for phrases, 'und' for file names and ids."""
    langs = np.array([lang for _, lang in JUNK_TEMPLATES], dtype=object)
    return langs[(template_hash % np.uint64(len(JUNK_TEMPLATES))).astype(np.int64)]
