"""``explain_image`` takes class names wherever it takes a class (the Python side of ``--classes``/``--target``)."""

import pytest

from attrdist.data import sample_image
from attrdist.explain import explain_image


@pytest.fixture(scope="module")
def photo():
    return sample_image("chelsea").resize((96, 96))


@pytest.mark.slow  # 2-8 s: two model calls on a busy 2-core CPU
def test_class_set_and_target_by_name(lite0, photo):
    exp = explain_image(lite0, photo, methods=["gradcam"], classes="Tabby, tiger cat,285", target="TIGER CAT")
    assert exp.classes == [281, 282, 285] and exp.target == 282
    assert exp.class_names == ["tabby", "tiger cat", "Egyptian cat"]


@pytest.mark.slow
def test_ranked_specs_and_ids_are_unchanged(lite0, photo):
    exp = explain_image(lite0, photo, methods=["gradcam"], classes="Best+Worst")
    assert len(exp.classes) == 2
    exp = explain_image(lite0, photo, methods=["gradcam"], classes=[281, 285], target=285)
    assert exp.classes == [281, 285] and exp.target == 285


def test_a_misspelt_or_shared_name_is_refused_with_help(lite0, photo):
    with pytest.raises(ValueError, match=r"did you mean 'tabby'"):
        explain_image(lite0, photo, methods=["gradcam"], classes="tabby cat,tiger cat")
    with pytest.raises(ValueError, match=r"264 \(Cardigan\), 474 \(cardigan\)"):
        explain_image(lite0, photo, methods=["gradcam"], classes="tabby,tiger cat", target="cardigan")
