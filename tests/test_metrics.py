"""One definition of each accuracy metric: the model card and `flirtl eval` print the same figure
for the same predictions, and the two R2 carry two labels."""

import numpy as np

from flirtl.nn.card import accuracy_table
from flirtl.nn.evaluate import LIFETIMES, Row, score, tables
from flirtl.nn.metrics import card_sfd_scores, per_pixel_r2, pooled_r2


def _cells(table: list[str], header: str) -> list[str]:
    """The cells of the first data row under the markdown table whose header line contains `header`."""
    start = next(i for i, line in enumerate(table) if header in line)
    return [cell.strip() for cell in table[start + 2].strip("|").split("|")]


def test_card_and_eval_print_the_same_rmse_and_distinct_r2():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 40)
    true = np.stack([np.exp(-t / rng.uniform(0.2, 2, (64, 1))) * rng.uniform(0.5, 1, (64, 1))] * 3, axis=-1)
    pred = true + rng.normal(0, 0.02, true.shape)
    truth = {name: rng.uniform(1, 3, 64) for name in LIFETIMES}
    test = {**truth, "sfd": true, "photons": rng.uniform(50, 5000, 64), "preset": "ss3", "seed": 1}

    card = card_sfd_scores(pred, true)
    card_row = _cells(accuracy_table([("float", "test", card)]), "R2 ch0 (pooled)")
    row = Row(model="m", method="float", bits=None, lifetimes=truth, sfd=pred)
    score(row, test)
    report = tables([row], test).splitlines()
    # "RMSE / mean per-pixel R2 / mean L2" of channel 0, 'total'
    eval_total = _cells(report, "| estimator | total |")[1].split(" / ")

    assert card_row[2] == eval_total[0] == f"{np.sqrt(np.mean((pred - true)[..., 0] ** 2)):.4f}"
    assert card_row[3] == f"{pooled_r2(pred[..., 0], true[..., 0]):.4f}"
    assert eval_total[1] == f"{per_pixel_r2(pred[..., 0], true[..., 0]):.3f}"
    # the spread between pixels is explained variance for the pooled R2 only: two figures, two labels
    assert pooled_r2(pred[..., 0], true[..., 0]) > per_pixel_r2(pred[..., 0], true[..., 0]) + 0.01
    assert not any("R2" in line and "pooled" not in line for line in accuracy_table([]))
    assert any("per-pixel R2" in line for line in report)
