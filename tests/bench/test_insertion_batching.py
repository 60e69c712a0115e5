"""The insertion benchmark computes an image's PIC work once and sends all its maps' images to the model together."""

import pytest

from attrdist.bench import InsertionConfig, run_insertion
from attrdist.bench.insertion import Insertion

pytestmark = pytest.mark.slow  # attributes one image with two methods and VAR


def test_all_maps_of_an_image_share_one_base_and_batched_forwards(tmp_path, lite0, monkeypatch):
    calls = []
    predict = Insertion.predict

    def counting(self, batch):
        calls.append(len(batch))
        return predict(self, batch)

    monkeypatch.setattr(Insertion, "predict", counting)
    with run_insertion(InsertionConfig(methods=["gradcam", "input_x_gradient"], max_items=1), tmp_path / "i",
                       lm=lite0) as run:
        aic = [s for s in run.store.scores() if s.metric == "aic_auc"]
    assert len(aic) == 4  # two methods, vanilla and VAR: four maps
    # the original and the fully blurred image once, then every map's thresholds in one forward (at most 64)
    assert calls[0] == 2 and len(calls) == 2 and 13 < calls[1] <= 4 * 13
