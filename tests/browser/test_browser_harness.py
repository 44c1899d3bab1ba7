"""Smoke test of the harness itself: a trivial anywidget round-trip."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser

COUNTER = '''
import anywidget, traitlets

class Counter(anywidget.AnyWidget):
    _esm = """
    export default {
      render({ model, el }) {
        const b = document.createElement("button");
        b.dataset.testid = "counter";
        const show = () => { b.textContent = `count ${model.get("value")}`; };
        b.addEventListener("click", () => {
          model.set("value", model.get("value") + 1);
          model.save_changes();
        });
        model.on("change:value", show);
        show();
        el.appendChild(b);
      },
    };
    """
    value = traitlets.Int(0).tag(sync=True)

counter = Counter()
counter
'''


def test_trivial_anywidget_round_trip(open_notebook: Any) -> None:
    nb = open_notebook("harness.ipynb", [COUNTER, "print('value', counter.value)"])
    nb.run_cell(0)
    button = nb.page.locator("[data-testid=counter]")
    button.wait_for()
    assert button.inner_text() == "count 0"
    button.click()
    button.click()
    nb.page.get_by_text("count 2").wait_for()
    nb.run_cell(1)
    assert "value 2" in nb.output_text(1)
