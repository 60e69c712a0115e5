import pytest
import torch

from attrdist.classes import parse_class_set, validate_classes


@pytest.fixture
def logits():
    return torch.tensor([[0.1, 3.0, 2.0, -5.0, 1.0], [4.0, 0.0, 1.0, 2.0, -1.0]])


def test_top_plus_worst(logits):
    cs = parse_class_set("top3+worst")
    assert cs.size == 4
    assert cs(logits).tolist() == [[1, 2, 4, 3], [0, 3, 2, 4]]


def test_best_vs_worst(logits):
    assert parse_class_set("best-vs-worst")(logits).tolist() == [[1, 3], [0, 4]]


def test_target_is_first_and_in_set(logits):
    out = parse_class_set("top2+worst")(logits, target=torch.tensor([3, 2]))
    assert out[:, 0].tolist() == [3, 2]
    # target 3 is the worst of sample 0: the next-least probable class takes the worst slot
    assert out.tolist() == [[3, 1, 0], [2, 0, 4]]
    for row in out.tolist():
        assert len(set(row)) == len(row)


def test_fixed_list(logits):
    cs = parse_class_set("4,0,2")
    assert cs(logits).tolist() == [[4, 0, 2], [4, 0, 2]]
    assert parse_class_set([1, 2]).fixed == (1, 2)


def test_fixed_list_missing_target(logits):
    with pytest.raises(ValueError, match="not in the class set"):
        parse_class_set("0,2")(logits, target=1)


@pytest.mark.parametrize("spec, msg", [("top1", "K=1"), ("5", "K=1"), ("1,1", "duplicate"), ("-1,2", "negative"),
                                       ("banana", "unknown class set"), ("top0+worst", "k >= 1")])
def test_bad_specs(spec, msg):
    with pytest.raises(ValueError, match=msg):
        parse_class_set(spec)


def test_out_of_range(logits):
    with pytest.raises(ValueError, match="out of range"):
        parse_class_set("1,7")(logits)
    with pytest.raises(ValueError, match="needs 6 classes"):
        parse_class_set("top5+worst")(logits)
    with pytest.raises(ValueError, match="out of range"):
        parse_class_set("top2")(logits, target=9)


def test_validate_classes():
    assert validate_classes(torch.tensor([[1, 2]]), 3).dtype == torch.long
    with pytest.raises(ValueError, match="duplicate"):
        validate_classes(torch.tensor([[1, 1]]))
    with pytest.raises(ValueError, match="integer"):
        validate_classes(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"\[B, K\]"):
        validate_classes(torch.tensor([1, 2]))


def test_class_names_resolve_case_insensitively_with_did_you_mean():
    from attrdist.classes import class_id, named_class_set
    from attrdist.labels import imagenet_class_names

    names = imagenet_class_names()[0]
    assert class_id("motor scooter", names) == 670 and class_id("MOTOR Scooter", names) == 670
    assert class_id("285", names) == 285
    with pytest.raises(ValueError, match="did you mean 'motor scooter'"):
        class_id("motor scoter", names)
    with pytest.raises(ValueError, match=r"names 2 classes: 264 \(Cardigan\), 474 \(cardigan\); give the id"):
        class_id("cardigan", names)
    with pytest.raises(ValueError, match="outside the model's 1000 classes"):
        class_id("1000", names)
    assert named_class_set("tabby, tiger cat,285", names) == "281,282,285"
    assert named_class_set("top3+worst", names) == "top3+worst"


def test_classes_command_and_names_on_the_command_line(capsys, tmp_path):
    from attrdist.cli import main

    assert main(["classes", "scooter"]) == 0
    assert "670  motor scooter" in capsys.readouterr().out
    assert main(["classes", "motor scoter"]) == 2
    assert "did you mean 'motor scooter'" in capsys.readouterr().err
    assert main(["explain", "--target", "no such class", "--out", str(tmp_path)]) == 2
    assert "no class named 'no such class'" in capsys.readouterr().err


def test_class_lists_of_any_shape_give_a_clear_answer():
    """A list of per-sample lists is a [B, K] class set (it raised torch's RuntimeError); anything else that is
    no class id is a ValueError that says what classes may be."""
    import numpy as np
    import torch

    from attrdist.classes import class_rule

    assert class_rule([[1, 4, 6]], 1, "cpu").tolist() == [[1, 4, 6]]
    assert class_rule([[1, 4], [7, 9]], 2, "cpu").tolist() == [[1, 4], [7, 9]]
    assert class_rule([np.int64(3), 5], 2, "cpu").tolist() == [[3, 5], [3, 5]]
    assert class_rule((torch.tensor(2), 8), 1, "cpu").tolist() == [[2, 8]]
    assert class_rule(np.array([[1, 2], [3, 4]]), 2, "cpu").tolist() == [[1, 2], [3, 4]]
    assert class_rule(np.array([5, 6]), 2, "cpu").tolist() == [[5, 6], [5, 6]]
    with pytest.raises(ValueError, match="rows for a batch of 2"):
        class_rule([[1, 4, 6]], 2, "cpu")
    with pytest.raises(ValueError, match="one length"):
        class_rule([[1, 4], [7]], 2, "cpu")
    for bad in ([1.5, 2], [True, 3], [], [None]):
        with pytest.raises(ValueError, match="classes must be class ids"):
            class_rule(bad, 1, "cpu")
