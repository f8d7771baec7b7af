"""Checks that messages.pot and the ko and en catalogs match the messages marked in the source.

The source is extracted as `pybabel extract -F babel.cfg` does, into a temporary file.
The commands that bring the files up to date are in the header of babel.cfg.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from engine.config import PROJECT_ROOT
from web.i18n import LOCALE_DIR, LOCALES

# Messages that `web.routes.staff` passes to `web.i18n.gettext(locale, msgid)`, which
# babel.cfg extracts through its `gettext:2` keyword.
STAFF_RESULT_MSGIDS = (
    "Lot #%(id)s was cancelled.",
    "Group buy #%(id)s was cancelled. Every pledge is released, and up-front payments are refunded in full.",
)


def read_catalog(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as file:
        return read_po(file, locale=locale)


def message_ids(catalog: Catalog) -> set[str | tuple[str, ...]]:
    """Return the msgids of `catalog`, with a plural message as its (singular, plural) tuple."""
    return {message.id for message in catalog if message.id}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The template that `pybabel extract -F babel.cfg` writes for the current source."""
    output = tmp_path_factory.mktemp("catalog") / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "--quiet", "extract",
         "-F", "babel.cfg", "-o", str(output), "."],
        cwd=PROJECT_ROOT, check=True,
    )
    return read_catalog(output)


def test_extraction_finds_locale_first_gettext(extracted: Catalog) -> None:
    ids = message_ids(extracted)

    for msgid in STAFF_RESULT_MSGIDS:
        assert msgid in ids


def test_template_matches_source(extracted: Catalog) -> None:
    """The committed messages.pot has exactly the extracted msgids, so it is regenerated after marked text changes."""
    committed = read_catalog(LOCALE_DIR / "messages.pot")

    assert sorted(map(str, message_ids(committed) - message_ids(extracted))) == []
    assert sorted(map(str, message_ids(extracted) - message_ids(committed))) == []


@pytest.mark.parametrize("locale", LOCALES)
def test_catalog_has_every_message(extracted: Catalog, locale: str) -> None:
    """Each catalog has every extracted msgid, none of them fuzzy, and no msgid the source dropped."""
    catalog = read_catalog(LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po", locale)
    fuzzy = [str(message.id) for message in catalog if message.id and message.fuzzy]

    assert sorted(map(str, message_ids(extracted) - message_ids(catalog))) == []
    assert sorted(map(str, message_ids(catalog) - message_ids(extracted))) == []
    assert fuzzy == []
    assert list(catalog.obsolete) == []
