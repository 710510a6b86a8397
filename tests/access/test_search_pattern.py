"""The one search-box pattern every list uses (jobs, proposals, the operators' directory)."""

from __future__ import annotations

import pytest

from rechenwerk.access.validation import MAX_SEARCH, search_pattern
from rechenwerk.errors import InvalidInput


def test_wildcards_in_the_term_are_literal() -> None:
    assert search_pattern("50%") == "%50\\%%"
    assert search_pattern("a_b") == "%a\\_b%"
    assert search_pattern("c:\\x") == "%c:\\\\x%"


def test_an_empty_term_searches_nothing() -> None:
    assert search_pattern("") is None
    assert search_pattern("   ") is None
    assert search_pattern("  llm ") == "%llm%"


def test_too_long_a_term_is_refused_naming_the_field() -> None:
    assert search_pattern("x" * MAX_SEARCH) is not None
    with pytest.raises(InvalidInput) as err:
        search_pattern("x" * (MAX_SEARCH + 1), field="q")
    assert err.value.field == "q"
    assert "201 characters" in str(err.value)
