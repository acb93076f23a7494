"""Write the demo corpora (synthetic, team-written templates) deterministically: run me.

``python training/flower/data/generate.py`` rewrites ``de-legal.jsonl``, ``es-blogs.jsonl``,
``pl-news.jsonl`` and ``heldout.jsonl`` next to this file. Same seed, same bytes.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20260415
HERE = Path(__file__).resolve().parent
TOPICS = ("data-protection", "employment", "housing", "health", "energy")
SUBJECTS = 120
RECORDS_PER_SUBJECT = 3
HELDOUT_PER_LANGUAGE = 60

# Per language: openers that fit the site's genre, topic phrases, neutral fillers.
BANKS: dict[str, dict] = {
    "de": {
        "site": "de-legal",
        "openers": [
            "Sachverhalt: ",
            "Gemäß dem vorliegenden Schriftsatz ",
            "Das Gericht stellt fest, dass ",
            "In der Begründung heißt es, ",
            "Die Kammer hat erwogen, dass ",
            "Nach Auffassung der Beklagten ",
        ],
        "fillers": [
            "Die Kosten des Verfahrens trägt die unterlegene Partei.",
            "Die Revision wird nicht zugelassen.",
            "Das Urteil ist vorläufig vollstreckbar.",
            "Eine mündliche Verhandlung fand nicht statt.",
            "Die Frist zur Stellungnahme ist abgelaufen.",
            "Der Streitwert wird auf 5.000 Euro festgesetzt.",
        ],
        "topics": {
            "data-protection": [
                "die Verarbeitung personenbezogener Daten ohne Einwilligung erfolgte",
                "der Verantwortliche die Auskunft nach Art. 15 DSGVO verweigerte",
                "die Datenschutzbehörde ein Bußgeld wegen fehlender Löschung verhängte",
                "die Übermittlung der Kundendaten in ein Drittland unzulässig war",
                "die Videoüberwachung des Eingangsbereichs das Persönlichkeitsrecht verletzt",
                "der Auftragsverarbeiter keine technischen Schutzmaßnahmen nachwies",
                "das Recht auf Löschung der gespeicherten Daten besteht",
                "die Einwilligungserklärung nicht freiwillig abgegeben wurde",
            ],
            "employment": [
                "die Kündigung des Arbeitnehmers sozial ungerechtfertigt ist",
                "der Arbeitgeber den Urlaubsanspruch nicht abgegolten hat",
                "die Befristung des Arbeitsvertrags unwirksam war",
                "der Betriebsrat vor der Versetzung nicht angehört wurde",
                "Überstunden ohne Vergütung angeordnet wurden",
                "die Abmahnung aus der Personalakte zu entfernen ist",
                "der Mindestlohn im Arbeitsverhältnis unterschritten wurde",
                "die Probezeit ordnungsgemäß verlängert wurde",
            ],
            "housing": [
                "die Mieterhöhung die ortsübliche Vergleichsmiete übersteigt",
                "der Vermieter die Kaution nicht zurückgezahlt hat",
                "die Eigenbedarfskündigung der Wohnung vorgeschoben war",
                "Schimmel in der Mietwohnung eine Minderung der Miete rechtfertigt",
                "die Nebenkostenabrechnung formell fehlerhaft ist",
                "die Untervermietung eines Zimmers ohne Erlaubnis erfolgte",
                "die Räumung der Wohnung bis Ende des Monats verlangt wird",
                "die Mietpreisbremse bei Vertragsschluss verletzt wurde",
            ],
            "health": [
                "der Arzt die Patientin nicht ausreichend über Risiken aufgeklärt hat",
                "die Krankenkasse die Kosten der Behandlung übernehmen muss",
                "ein Behandlungsfehler im Krankenhaus nachgewiesen wurde",
                "die Pflegeversicherung den Pflegegrad zu niedrig festsetzte",
                "die Impfung als Arbeitsunfall anzuerkennen ist",
                "die Klinik die Patientenakte herausgeben muss",
                "die Rehabilitation nach der Operation bewilligt wurde",
                "das Medikament nicht zur Erstattung zugelassen ist",
            ],
            "energy": [
                "der Stromversorger die Preiserhöhung nicht wirksam angekündigt hat",
                "die Einspeisevergütung für die Solaranlage zu zahlen ist",
                "der Netzbetreiber den Anschluss der Windkraftanlage verzögerte",
                "die Gassperre wegen Zahlungsrückstand unverhältnismäßig war",
                "die Heizkostenabrechnung den Verbrauch falsch verteilt",
                "die Genehmigung für das Windrad rechtswidrig erteilt wurde",
                "der Energieausweis beim Verkauf fehlte",
                "die Umlage für erneuerbare Energien korrekt berechnet wurde",
            ],
        },
    },
    "es": {
        "site": "es-blogs",
        "openers": [
            "Hoy os quiero contar que ",
            "En mi blog de esta semana: ",
            "Muchos lectores me preguntan por qué ",
            "Ayer leí una noticia y resulta que ",
            "Os dejo mi opinión: creo que ",
            "Una amiga me comentó que ",
        ],
        "fillers": [
            "¡Dejadme vuestros comentarios abajo!",
            "Si os ha gustado, compartid la entrada.",
            "Nos vemos en el próximo post.",
            "Gracias por leerme un día más.",
            "Seguiré informando en las redes.",
            "Un abrazo a todos los lectores.",
        ],
        "topics": {
            "data-protection": [
                "las aplicaciones recogen nuestros datos personales sin permiso",
                "pedí a la empresa que borrara mis datos y no contestó",
                "la protección de datos en internet es un derecho fundamental",
                "las cookies de seguimiento vigilan todo lo que hacemos",
                "la agencia de protección de datos multó a una compañía telefónica",
                "compartir fotos de otras personas requiere su consentimiento",
                "las contraseñas filtradas ponen en riesgo nuestra privacidad",
                "el reglamento europeo obliga a informar de las brechas de datos",
            ],
            "employment": [
                "encontrar trabajo después de los cincuenta es muy difícil",
                "mi jefe no me paga las horas extra desde enero",
                "el teletrabajo ha cambiado mi vida laboral",
                "el contrato temporal se renueva cada seis meses",
                "los sindicatos convocan una huelga en la fábrica",
                "pedir un aumento de sueldo da mucho miedo",
                "la entrevista de trabajo salió mejor de lo esperado",
                "el despido improcedente se puede recurrir",
            ],
            "housing": [
                "el alquiler del piso ha subido otra vez este año",
                "comprar una vivienda en Madrid es casi imposible",
                "el casero no quiere devolver la fianza",
                "compartir piso con desconocidos tiene sus ventajas",
                "la hipoteca variable nos cuesta cada mes más",
                "los pisos turísticos expulsan a los vecinos del barrio",
                "buscar piso de alquiler se ha convertido en una pesadilla",
                "la reforma de la cocina duró tres meses",
            ],
            "health": [
                "la lista de espera del hospital es de cuatro meses",
                "el médico de cabecera me recetó un tratamiento nuevo",
                "hacer ejercicio cada día mejora la salud mental",
                "la vacuna de la gripe ya está disponible en el centro de salud",
                "dormir poco afecta a la salud del corazón",
                "la fisioterapia me ayudó con el dolor de espalda",
                "la sanidad pública necesita más enfermeras",
                "comer menos azúcar reduce el riesgo de diabetes",
            ],
            "energy": [
                "la factura de la luz se ha disparado este invierno",
                "instalamos placas solares en el tejado de casa",
                "el precio del gas depende del mercado internacional",
                "los coches eléctricos necesitan más puntos de carga",
                "ahorrar energía en casa es más fácil de lo que parece",
                "los parques eólicos generan energía renovable en Galicia",
                "la tarifa eléctrica con discriminación horaria compensa",
                "el autoconsumo solar reduce la factura eléctrica",
            ],
        },
    },
    "pl": {
        "site": "pl-news",
        "openers": [
            "W tym wydaniu newslettera: ",
            "Drodzy subskrybenci, informujemy, że ",
            "Najważniejsza wiadomość tygodnia: ",
            "Z ostatniej chwili: ",
            "Przypominamy naszym czytelnikom, że ",
            "Jak donosi nasza redakcja, ",
        ],
        "fillers": [
            "Więcej informacji w kolejnym wydaniu.",
            "Dziękujemy za subskrypcję naszego biuletynu.",
            "Zapraszamy do lektury pełnego artykułu.",
            "Redakcja życzy udanego tygodnia.",
            "Prosimy o przesyłanie opinii na nasz adres.",
            "Do zobaczenia w przyszły piątek.",
        ],
        "topics": {
            "data-protection": [
                "urząd ochrony danych osobowych nałożył karę na bank",
                "firma musi usunąć dane klientów na ich żądanie",
                "wyciek danych osobowych dotknął tysiące użytkowników",
                "zgoda na przetwarzanie danych musi być dobrowolna",
                "monitoring w miejscu pracy narusza prywatność pracowników",
                "RODO chroni dane osobowe obywateli Unii",
                "aplikacja przekazywała dane lokalizacji reklamodawcom",
                "administrator danych nie zgłosił naruszenia na czas",
            ],
            "employment": [
                "bezrobocie w regionie spadło do najniższego poziomu",
                "pracodawcy szukają pracowników do pracy zdalnej",
                "płaca minimalna wzrośnie od stycznia",
                "umowa o pracę daje więcej ochrony niż umowa zlecenie",
                "związki zawodowe negocjują podwyżki w fabryce",
                "młodzi ludzie coraz częściej zmieniają pracę",
                "urlop rodzicielski zostanie wydłużony",
                "zwolnienia grupowe objęły zakład w Łodzi",
            ],
            "housing": [
                "ceny mieszkań w Warszawie znów wzrosły",
                "najem mieszkania pochłania połowę pensji",
                "kredyt hipoteczny jest trudniej dostępny dla młodych",
                "deweloperzy budują nowe osiedla na obrzeżach miasta",
                "czynsz w spółdzielni mieszkaniowej wzrośnie",
                "program mieszkaniowy ma pomóc rodzinom z dziećmi",
                "remont kamienicy w centrum potrwa dwa lata",
                "właściciel mieszkania podniósł opłaty za wynajem",
            ],
            "health": [
                "kolejki do lekarzy specjalistów wciąż są długie",
                "szpital powiatowy otworzył nowy oddział",
                "szczepienia przeciw grypie są bezpłatne dla seniorów",
                "ruch i zdrowa dieta chronią serce",
                "brakuje pielęgniarek w przychodniach",
                "nowy lek na cukrzycę trafi na listę refundacyjną",
                "ratownicy medyczni apelują o wyższe płace",
                "profilaktyka zdrowotna zmniejsza koszty leczenia",
            ],
            "energy": [
                "ceny prądu dla gospodarstw domowych zostaną zamrożone",
                "fotowoltaika na dachach domów bije rekordy",
                "elektrownia węglowa zostanie zamknięta",
                "farmy wiatrowe na Bałtyku dostarczą energię",
                "rachunki za gaz wzrosły w tym sezonie grzewczym",
                "pompy ciepła zastępują stare piece",
                "energia odnawialna stanowi rosnący udział w miksie",
                "oszczędzanie energii w domu obniża rachunki",
            ],
        },
    },
}


CONJUNCTIONS = {"de-legal": "und", "es-blogs": "y", "pl-news": "a ponadto"}
ASIDES = {"de-legal": "Nebenbei: ", "es-blogs": "Por cierto, ", "pl-news": "Przy okazji: "}


def compose(rng: random.Random, bank: dict, topic: str) -> str:
    first, second = rng.sample(bank["topics"][topic], 2)
    text = f"{rng.choice(bank['openers'])}{first}, {CONJUNCTIONS[bank['site']]} {second}."
    # One record in three mentions another topic in passing: the label is the main one.
    if rng.random() < 0.33:
        other = rng.choice([t for t in TOPICS if t != topic])
        text += f" {ASIDES[bank['site']]}{rng.choice(bank['topics'][other])}."
    return f"{text} {rng.choice(bank['fillers'])}"


def site_records(rng: random.Random, lang: str) -> list[dict]:
    bank = BANKS[lang]
    records = []
    for subject in range(1, SUBJECTS + 1):
        for k in range(RECORDS_PER_SUBJECT):
            topic = rng.choice(TOPICS)
            records.append(
                {
                    "id": f"{bank['site']}-r{(subject - 1) * RECORDS_PER_SUBJECT + k + 1:04d}",
                    "subject": f"{bank['site']}-s{subject:04d}",
                    "lang": lang,
                    "label": topic,
                    "text": compose(rng, bank, topic),
                }
            )
    return records


def heldout_records(rng: random.Random) -> list[dict]:
    records = []
    for lang in BANKS:
        for i in range(HELDOUT_PER_LANGUAGE):
            topic = TOPICS[i % len(TOPICS)]
            records.append(
                {
                    "id": f"heldout-{lang}-{i + 1:03d}",
                    "lang": lang,
                    "label": topic,
                    "text": compose(rng, BANKS[lang], topic),
                }
            )
    return records


def write_jsonl(path: Path, records: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")


def main(out_dir: Path = HERE) -> None:
    # A seeded, reproducible generator is the point here; nothing is secret.
    for lang, bank in BANKS.items():
        rng = random.Random(f"{SEED}-{lang}")  # noqa: S311
        write_jsonl(out_dir / f"{bank['site']}.jsonl", site_records(rng, lang))
    heldout_rng = random.Random(f"{SEED}-heldout")  # noqa: S311
    write_jsonl(out_dir / "heldout.jsonl", heldout_records(heldout_rng))


if __name__ == "__main__":
    main()
