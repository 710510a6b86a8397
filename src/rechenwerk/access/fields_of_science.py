"""Fields of science of projects: the OECD Fields of Research and Development (FORD),
the classification of the Frascati Manual 2015 (OECD, "Frascati Manual 2015: Guidelines
for Collecting and Reporting Data on Research and Experimental Development", Table 2.2),
which revised the "Fields of Science and Technology" (FOS) list of 2007.

A project's ``field_of_science`` is one code: a major field ("1" to "6") or one of its
second-level fields ("1.2" Computer and information sciences). Funder reports group
GPU-hours by it (``reports/funder.py``), second-level codes under their major field too.
"""

from __future__ import annotations

from rechenwerk.errors import InvalidInput

SOURCE = ("OECD Fields of Research and Development (FORD), Frascati Manual 2015, "
          "Table 2.2")

# code -> name; major fields first, each followed by its second-level fields
FIELDS: dict[str, str] = {
    "1": "Natural sciences",
    "1.1": "Mathematics",
    "1.2": "Computer and information sciences",
    "1.3": "Physical sciences",
    "1.4": "Chemical sciences",
    "1.5": "Earth and related environmental sciences",
    "1.6": "Biological sciences",
    "1.7": "Other natural sciences",
    "2": "Engineering and technology",
    "2.1": "Civil engineering",
    "2.2": "Electrical engineering, electronic engineering, information engineering",
    "2.3": "Mechanical engineering",
    "2.4": "Chemical engineering",
    "2.5": "Materials engineering",
    "2.6": "Medical engineering",
    "2.7": "Environmental engineering",
    "2.8": "Environmental biotechnology",
    "2.9": "Industrial biotechnology",
    "2.10": "Nano-technology",
    "2.11": "Other engineering and technologies",
    "3": "Medical and health sciences",
    "3.1": "Basic medicine",
    "3.2": "Clinical medicine",
    "3.3": "Health sciences",
    "3.4": "Medical biotechnology",
    "3.5": "Other medical sciences",
    "4": "Agricultural and veterinary sciences",
    "4.1": "Agriculture, forestry, and fisheries",
    "4.2": "Animal and dairy science",
    "4.3": "Veterinary science",
    "4.4": "Agricultural biotechnology",
    "4.5": "Other agricultural sciences",
    "5": "Social sciences",
    "5.1": "Psychology and cognitive sciences",
    "5.2": "Economics and business",
    "5.3": "Education",
    "5.4": "Sociology",
    "5.5": "Law",
    "5.6": "Political science",
    "5.7": "Social and economic geography",
    "5.8": "Media and communications",
    "5.9": "Other social sciences",
    "6": "Humanities and the arts",
    "6.1": "History and archaeology",
    "6.2": "Languages and literature",
    "6.3": "Philosophy, ethics and religion",
    "6.4": "Arts (arts, history of arts, performing arts, music)",
    "6.5": "Other humanities",
}

HOW_TO_LIST = ("See the codes with `rechenwerk project fields` or GET "
               "/api/v1/fields-of-science.")


def major_of(code: str) -> str:
    """The major field of a code: "1.2" -> "1"."""
    return code.split(".", 1)[0]


def label(code: str | None) -> str:
    """ "1.2 Computer and information sciences", or "" for None."""
    if code is None:
        return ""
    return f"{code} {FIELDS.get(code, '(unknown code)')}"


def check_field(value: str | None, field_name: str = "field_of_science") -> str | None:
    """The code (whitespace stripped), None for None or empty; InvalidInput naming
    ``field_name`` for a code not in the list."""
    if value is None or not value.strip():
        return None
    code = value.strip()
    if code not in FIELDS:
        raise InvalidInput(
            f"{field_name} {value!r} is not a field of the OECD FORD list (Frascati "
            "Manual 2015): give a code such as 1.2 (Computer and information sciences) "
            "or a major field 1 to 6",
            field=field_name, hint=HOW_TO_LIST)
    return code
