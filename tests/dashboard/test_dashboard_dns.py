"""The dashboard of a service behind weighted DNS records (route53): the
production bar shows the records' split and names the TTL clients follow
it within, without a console error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.controller.test_e2e_dns import dns_config

pytestmark = pytest.mark.browser


async def test_the_production_bar_is_the_dns_records(stack_factory, dashboard, tmp_path: Path) -> None:
    stack = await stack_factory(dns_config(tmp_path, {"strategy": "LINEAR", "bakeTimeInMinutes": 0}))
    board = await dashboard(stack)
    page = board.page
    await board.wait_weights({"blue": 100, "green": 0})
    title = await page.get_attribute("#bar-production .seg[data-group=blue]", "title")
    assert title is not None and "route53/app.shiftlab.test, DNS TTL 1 s" in title, title
    assert board.problems == []
