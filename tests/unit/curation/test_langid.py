"""Language ID: accuracy on labelled short alt-texts, `lang` / `lang_score` reasons, batching, pickling."""

import pickle

import numpy as np
import pytest

from curation.langid import LangIdConfig, LangReject, LanguageIdentifier, bundled_model_path, lang_rejects

# Realistic short alt-texts, written for this test: 14 English, 12 each in fr/de/es/zh/ru.
CAPTIONS: dict[str, list[str]] = {
    "en": [
        "Golden retriever puppy playing in the snow",
        "Men's waterproof hiking boots, brown leather, size 10",
        "Aerial view of the Golden Gate Bridge at sunset",
        "Chocolate chip cookies cooling on a wire rack",
        "Young woman working on a laptop in a coffee shop",
        "Vintage red bicycle leaning against a brick wall",
        "Family photo at the beach during summer vacation",
        "Modern kitchen with white cabinets and marble countertops",
        "The mayor speaks to reporters outside city hall on Tuesday",
        "Hand-painted ceramic coffee mug with floral design",
        "Close-up of a monarch butterfly on a purple flower",
        "Free printable birthday party invitation template",
        "Snow-covered mountains reflected in a calm lake",
        "HOUSE FOR SALE - 3 BEDROOMS, 2 BATHS",
    ],
    "fr": [
        "Un chiot golden retriever qui joue dans la neige",
        "Vue aérienne de la tour Eiffel au coucher du soleil",
        "Robe d'été en lin pour femme, couleur bleu marine",
        "Recette de la tarte aux pommes de ma grand-mère",
        "Le président s'adresse aux journalistes devant l'Élysée",
        "Chambre d'hôtel avec vue sur la mer et balcon privé",
        "Appartement à louer dans le centre de Lyon",
        "Bouquet de roses rouges pour la Saint-Valentin",
        "Enfants qui jouent au football dans la cour de l'école",
        "Fromage et vin sur une table en bois",
        "Photo de mariage dans un jardin fleuri",
        "Chaussures de randonnée imperméables pour homme",
    ],
    "de": [
        "Ein Golden Retriever Welpe spielt im Schnee",
        "Luftaufnahme des Brandenburger Tors bei Sonnenuntergang",
        "Damen Sommerkleid aus Leinen in Marineblau",
        "Rezept für einen einfachen Apfelkuchen vom Blech",
        "Die Bundeskanzlerin spricht mit Journalisten in Berlin",
        "Moderne Küche mit weißen Schränken und Arbeitsplatte aus Marmor",
        "Wohnung zu vermieten in der Münchner Innenstadt",
        "Kinder spielen Fußball auf dem Schulhof",
        "Wanderschuhe für Herren, wasserdicht und atmungsaktiv",
        "Blick auf die Alpen mit schneebedeckten Gipfeln",
        "Frisches Brot und Brötchen aus der Bäckerei",
        "Hochzeitsfoto im Garten mit vielen Blumen",
    ],
    "es": [
        "Un cachorro golden retriever jugando en la nieve",
        "Vista aérea de la Sagrada Familia al atardecer",
        "Vestido de verano de lino para mujer color azul marino",
        "Receta de tortilla de patatas tradicional española",
        "El presidente habla con los periodistas frente al palacio",
        "Cocina moderna con muebles blancos y encimera de mármol",
        "Piso en alquiler en el centro de Madrid",
        "Niños jugando al fútbol en el patio del colegio",
        "Zapatillas de deporte para hombre, talla 42",
        "Playa de arena blanca con aguas cristalinas",
        "Ramo de rosas rojas para el día de San Valentín",
        "Foto de boda en un jardín lleno de flores",
    ],
    "zh": [
        "金毛寻回犬幼犬在雪地里玩耍",
        "日落时分的上海外滩夜景",
        "女士夏季亚麻连衣裙 海军蓝",
        "家常红烧肉的做法步骤图",
        "国家主席在人民大会堂会见外国代表团",
        "现代简约风格厨房装修效果图",
        "北京市中心两室一厅出租",
        "孩子们在学校操场上踢足球",
        "男士防水登山鞋 棕色真皮",
        "雪山倒映在平静的湖面上",
        "新鲜出炉的面包和蛋糕",
        "婚纱照 花园 外景拍摄",
    ],
    "ru": [
        "Щенок золотистого ретривера играет в снегу",
        "Вид с высоты на Красную площадь на закате",
        "Женское летнее платье из льна тёмно-синего цвета",
        "Рецепт домашнего борща со сметаной",
        "Президент выступает перед журналистами в Кремле",
        "Современная кухня с белыми шкафами и мраморной столешницей",
        "Сдается квартира в центре Москвы",
        "Дети играют в футбол на школьном дворе",
        "Мужские водонепроницаемые ботинки для походов",
        "Заснеженные горы отражаются в спокойном озере",
        "Свежий хлеб и булочки из пекарни",
        "Свадебная фотография в цветущем саду",
    ],
}


@pytest.fixture(scope="module")
def lid() -> LanguageIdentifier:
    return LanguageIdentifier(LangIdConfig(keep=["en"]))


def _flat():
    return [(lang, text) for lang, texts in CAPTIONS.items() for text in texts]


def test_bundled_model_is_the_official_lid176():
    path = bundled_model_path()
    assert path.name == "lid.176.ftz" and path.is_file()
    assert path.stat().st_size < 2_000_000  # the compressed official model (~917 kB), not a download


def test_accuracy_on_short_captions_is_at_least_90_percent(lid):
    rows = _flat()
    codes, scores = lid.predict([t for _, t in rows])
    assert codes.type == "string" and scores.dtype == np.float32
    correct = sum(code == lang for (lang, _), code in zip(rows, codes.to_pylist(), strict=False))
    assert correct / len(rows) >= 0.9, f"{correct}/{len(rows)}"
    for lang in CAPTIONS:  # no language is sacrificed to reach the average
        per = [code == lang for (lg, _), code in zip(rows, codes.to_pylist(), strict=False) if lg == lang]
        assert sum(per) / len(per) >= 0.6, lang


def test_non_english_rejected_with_reason_lang_when_keeping_english(lid):
    rows = _flat()
    _, _, reasons = lid.classify([t for _, t in rows])
    for (lang, text), reason in zip(rows, reasons.to_pylist(), strict=False):
        if lang == "en":
            assert reason is None, text
        else:
            assert reason == LangReject.LANG == "lang", text


def test_threshold_rejects_low_scores_with_lang_score():
    strict = LanguageIdentifier(LangIdConfig(keep=["en"], threshold=0.99))
    codes, scores, reasons = strict.classify(CAPTIONS["en"])
    assert set(codes.to_pylist()) == {"en"}
    expected = [None if s >= 0.99 else "lang_score" for s in scores]
    assert reasons.to_pylist() == expected and "lang_score" in expected


def test_keep_none_accepts_every_language():
    anylang = LanguageIdentifier(LangIdConfig(keep=None))
    _, _, reasons = anylang.classify([t for _, t in _flat()])
    assert reasons.null_count == len(reasons)


def test_null_empty_and_multiline_texts(lid):
    codes, scores, reasons = lid.classify([None, "", "a dog\non the beach\nat sunset", "un chien\nsur la plage"])
    assert codes.to_pylist()[:2] == [None, None] and scores[:2].tolist() == [0.0, 0.0]
    assert codes.to_pylist()[2:] == ["en", "fr"]
    assert reasons.to_pylist() == ["lang", "lang", None, "lang"]


def test_shouting_is_lowercased_for_the_model_only():
    text = "HOUSE FOR SALE - 3 BEDROOMS, 2 BATHS"
    on = LanguageIdentifier(LangIdConfig(lowercase_shouting=True)).predict([text])
    off = LanguageIdentifier(LangIdConfig(lowercase_shouting=False)).predict([text])
    assert on[0].to_pylist() == ["en"] and on[1][0] > off[1][0]


def test_pickles_as_config_and_loads_lazily(lid):
    lid.predict(["warm up"])
    blob = pickle.dumps(lid)
    assert len(blob) < 2000  # the model is not in the pickle
    clone = pickle.loads(blob)
    assert clone._model is None
    texts = [t for _, t in _flat()]
    assert clone.predict(texts)[0].to_pylist() == lid.predict(texts)[0].to_pylist()


def test_missing_model_file_is_named(tmp_path):
    missing = tmp_path / "nope.ftz"
    with pytest.raises(FileNotFoundError, match="nope.ftz"):
        LanguageIdentifier(LangIdConfig(model_path=missing)).predict(["hello world"])


def test_lang_rejects_literal():
    reasons = lang_rejects(["en", "fr", None, "en"], np.array([0.9, 0.9, 0.0, 0.2]), ["en"], 0.5)
    assert reasons.to_pylist() == [None, "lang", "lang", "lang_score"]
