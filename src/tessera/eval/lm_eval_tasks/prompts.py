"""Prompt functions of the local XCOPA task, mirroring lm-eval's `tasks/xcopa/utils.py` (Italian)."""

from __future__ import annotations

# The connective that joins the premise to each alternative, as upstream's doc_to_text_it.
_CONNECTORS_IT = {"cause": "perché", "effect": "quindi"}


def _lowercase_first(choice: str) -> str:
    return choice[0].lower() + choice[1:]


def xcopa_it_text(doc: dict) -> str:
    # Upstream drops the premise's final period and appends the connective.
    return doc["premise"].strip()[:-1] + f" {_CONNECTORS_IT[doc['question']]}"


def xcopa_choices(doc: dict) -> list[str]:
    return [_lowercase_first(doc["choice1"]), _lowercase_first(doc["choice2"])]
