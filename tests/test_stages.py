"""The stage split (codegen/stages.py): passes at reductions, what each pass reads and
writes, and what is read back from arrays an earlier pass stored instead of kept."""
import textwrap

import pytest

from optforge.codegen.analysis import analyse
from optforge.codegen.loader import load_rule
from optforge.codegen.stages import plan
from optforge.codegen.tac import lower


def plans_of(path):
    rule = load_rule(path)
    return {v.name: plan(lower(v, rule)) for v in analyse(rule).variants.values()}


def fixture_spec(tmp_path, update, states):
    lines = ['name = "Fixture"', 'update = """', textwrap.dedent(update).strip(), '"""',
             "[hyperparameters]", "beta1 = 0.9", "[states]"] + [f'{name} = "zeros"' for name in states]
    text = "\n".join(lines) + "\n"
    path = tmp_path / "fixture.toml"
    path.write_text(text)
    return plans_of(path)["default"]


def test_elementwise_rules_are_one_pass(repo_root):
    (adam,) = plans_of(repo_root / "specs" / "adam.toml").values()
    (only,) = adam.passes
    assert only.reads == ("weight", "grad", "mean", "var")
    assert only.writes == ("weight", "mean", "var")
    assert only.reductions == () and only.loads == {}
    assert adam.accesses == 7                     # 28 bytes per float32 parameter


@pytest.mark.parametrize("variant", ["bias_correction", "not_bias_correction"])
def test_lamb_is_two_passes_at_the_40_byte_minimum(repo_root, variant):
    lamb = plans_of(repo_root / "specs" / "lamb.toml")[variant]
    first, second = lamb.passes
    assert first.reads == ("weight", "grad", "mean", "var")
    assert first.writes == ("mean", "var")        # the moments are stored in pass 1 ...
    assert [r.op for r in first.reductions] == ["norm", "norm"]
    assert second.reads == ("weight", "mean", "var")   # ... and read back: no gradient in pass 2
    assert sorted(second.loads.values()) == ["mean", "var"]
    assert second.writes == ("weight",)
    assert len(second.uses) == 2
    assert lamb.accesses == 10                    # 40 bytes per float32 parameter


def test_lars_reduces_first_and_updates_in_the_second_pass(repo_root):
    lars = plans_of(repo_root / "specs" / "lars.toml")
    first, second = lars["not_exempt__momentum_ne_0"].passes
    assert first.reads == ("weight", "grad") and first.writes == ()
    assert second.writes == ("weight", "mom")
    (exempt,) = lars["exempt__momentum_ne_0"].passes     # exempt layers have no norm at all
    assert exempt.reductions == ()


def test_lans_needs_three_passes_for_its_nested_norms(repo_root):
    (lans,) = plans_of(repo_root / "specs" / "lans.toml").values()
    # pass 1: ||grad|| and ||weight||; pass 2: the norms of both directions, which need ||grad||
    assert [len(p.reductions) for p in lans.passes] == [2, 2, 0]
    assert lans.passes[0].writes == () and lans.passes[-1].writes == ("weight",)
    assert lans.passes[1].writes == ("mean", "var")


def test_row_means_split_like_norms(repo_root):
    (group,) = plans_of(repo_root / "specs" / "groupadagrad.toml").values()
    first, second = group.passes
    assert [r.op for r in first.reductions] == ["row_mean"]
    assert first.reads == ("grad",) and first.writes == ()
    assert second.writes == ("weight", "history")


def test_a_stored_output_is_read_back_instead_of_recomputed(tmp_path):
    result = fixture_spec(tmp_path, """
        mom    = beta1 * mom + grad
        weight = weight - lr * mom / norm(mom)
        """, ["mom"])
    first, second = result.passes
    assert first.writes == ("mom",) and first.reads == ("grad", "mom")
    assert second.reads == ("weight", "mom") and list(second.loads.values()) == ["mom"]
    assert result.accesses == 6


def test_an_array_whose_old_value_a_later_pass_needs_is_written_late(tmp_path):
    result = fixture_spec(tmp_path, """
        old    = mean
        mean   = beta1 * mean + grad
        weight = weight - lr * old / norm(grad)
        """, ["mean"])
    first, second = result.passes
    assert first.writes == ()                     # writing mean in pass 1 would lose the old value
    assert second.writes == ("weight", "mean")
    assert "mean" in second.reads and second.loads == {}
