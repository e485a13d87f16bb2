"""The licence each release label is published under, in every spelling the portal uses:
the page's words, CKAN's licence id and title, DCAT's EU licence IRI (one place)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pulsesynth.labels import OPEN


@dataclass(frozen=True)
class Licence:
    """The licence a release label carries."""

    ckan_id: str          # an id of CKAN's default licence list
    title: str            # CKAN's and DCAT's title
    name: str             # what the release page says
    url: str | None       # a human-readable page (None: the dataset's own terms)
    dcat: str | None      # the EU licence authority IRI (None: the dataset's own terms)

    @property
    def link(self) -> str:
        """Where the page's licence line points: the licence, else the card's terms."""
        return self.url or "#terms"


#: Open releases are CC BY 4.0 (re-use with attribution, as the data card's terms say);
#: confidential ones are under the data card's sharing terms, not an open licence.
OPEN_LICENCE = Licence(
    "cc-by", "Creative Commons Attribution 4.0",
    "Creative Commons Attribution 4.0 (CC BY 4.0)",
    "https://creativecommons.org/licenses/by/4.0/",
    "http://publications.europa.eu/resource/authority/licence/CC_BY_4_0")
SHARED_LICENCE = Licence(
    "other-closed", "Other (Not Open): Shared — Confidential terms of the data card",
    "Restricted: government entities only, under the terms below", None, None)


def licence(entry: dict[str, Any]) -> Licence:
    """The licence of one catalogue entry, by its label."""
    return OPEN_LICENCE if entry["label"] == OPEN else SHARED_LICENCE
