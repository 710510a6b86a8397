"""The API docs render in Chromium with every request off this server blocked."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("portal-browser")]


@pytest.mark.parametrize(("path", "rendered"), [
    ("/docs", ".opblock-summary-path"),         # Swagger UI lists the operations
    ("/redoc", "[data-section-id^='tag/']"),    # ReDoc's menu of tags
])
def test_docs_render_offline(new_page: Any, portal: Any, path: str, rendered: str) -> None:
    page = new_page()
    blocked: list[str] = []

    def only_this_server(route: Any) -> None:
        url = route.request.url
        if url.startswith(portal.url):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(path)
    page.wait_for_selector(rendered)
    assert page.locator(rendered).count() > 5
    assert blocked == [], f"{path} asked the internet for {blocked}"
