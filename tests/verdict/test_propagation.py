"""The propagation estimate and the local verdict on hand-made observations of one token."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec.verdict import LOCAL_LIMITS, Observation, estimate_token, judge_token, limit_for
from pytest_llmprec.verdict.local import RESOLUTION
from pytest_llmprec.verdict.propagation import GAIN_RANGE, excess, peer_key

BF16 = "torch.bfloat16"


class Token:
    """Observations of one token, in execution order; ``value`` names a tensor's golden values."""

    def __init__(self) -> None:
        self.observations: list[Observation] = []

    def add(self, node, leaf, role, error, value, my_value=None, kind="float", shape=(4, 8)):
        golden_print = (shape, value)
        my_print = (shape, my_value if my_value is not None else value)
        key = f"token0/{node}/{leaf}"
        order = len(self.observations)
        self.observations.append(
            Observation(key, 0, node, leaf, role, order, kind, error, golden_print, my_print, BF16)
        )
        return key


def chain(errors):
    """``embed -> l0 -> l1 -> ...``: leaf modules, each fed the previous one's output."""
    token = Token()
    token.add("root.embed", "input_0", "input", 0.0, "ids", kind="exact")
    token.add("root.embed", "output", "output", errors[0], "v0")
    for i, error in enumerate(errors[1:], 1):
        token.add(f"root.l{i}", "input_0", "input", errors[i - 1], f"v{i - 1}")
        token.add(f"root.l{i}", "output", "output", error, f"v{i}")
    return token


def test_a_leaf_introduces_what_its_input_error_does_not_explain():
    token = chain([0.003, 0.005])
    estimate = estimate_token(token.observations)["token0/root.l1/output"]
    assert estimate.introduced == pytest.approx(math.sqrt(0.005**2 - 0.003**2))
    assert (estimate.expected, estimate.owner, estimate.evidence) == (0.003, "root.l1", "leaf")


def test_a_carried_input_introduces_nothing():
    token = chain([0.003, 0.005])
    estimate = estimate_token(token.observations)["token0/root.l1/input_0"]
    assert (estimate.introduced, estimate.evidence) == (0.0, "carried")
    assert "token0/root.embed/output" in estimate.detail


def test_an_output_smaller_than_its_inherited_error_introduces_nothing():
    token = chain([0.01, 0.004])
    assert estimate_token(token.observations)["token0/root.l1/output"].introduced == 0.0


@given(st.lists(st.floats(0.0, 0.05), min_size=2, max_size=6), st.floats(1e-4, 0.02))
def test_independent_errors_add_in_quadrature_and_are_recovered(own_errors, first):
    """Each leaf adds an independent error: the accumulated errors grow in quadrature and the
    estimate returns each leaf's own error (float64 reference: the quadrature sum)."""
    accumulated = [first]
    for own in own_errors:
        accumulated.append(math.sqrt(accumulated[-1] ** 2 + own**2))
    estimates = estimate_token(chain(accumulated).observations)
    for i, own in enumerate(own_errors, 1):
        # the subtraction of squares loses digits when ``own`` is tiny against the inherited error
        tolerance = 1e-6 * accumulated[i]
        assert estimates[f"token0/root.l{i}/output"].introduced == pytest.approx(own, rel=1e-9, abs=tolerance)


def test_an_input_my_side_takes_from_elsewhere_is_wiring_of_the_enclosing_module():
    token = Token()
    token.add("root.mlp.gate", "input_0", "input", 0.002, "x")
    token.add("root.mlp.gate", "output", "output", 0.003, "g")
    token.add("root.mlp.up", "input_0", "input", 0.002, "x")
    token.add("root.mlp.up", "output", "output", 0.003, "u")
    token.add("root.mlp.act", "input_0", "input", 1.4, "g", my_value="u")  # my side feeds up, not gate
    token.add("root.mlp.act", "output", "output", 1.4, "a")
    token.add("root.mlp", "input_0", "input", 0.002, "x")
    token.add("root.mlp", "output", "output", 1.4, "a")
    estimates = estimate_token(token.observations)
    wiring = estimates["token0/root.mlp.act/input_0"]
    assert (wiring.evidence, wiring.owner) == ("wiring", "root.mlp")
    assert wiring.introduced == pytest.approx(math.sqrt(1.4**2 - 0.003**2))
    assert estimates["token0/root.mlp.act/output"].introduced == 0.0  # the activation itself is right
    assert estimates["token0/root.mlp/output"].evidence == "carried"


def test_a_value_computed_inside_a_module_belongs_to_it():
    token = Token()
    token.add("root.attn.q", "input_0", "input", 0.002, "x")
    token.add("root.attn.q", "output", "output", 0.003, "q")
    token.add("root.attn.v", "input_0", "input", 0.002, "x")
    token.add("root.attn.v", "output", "output", 0.004, "v")
    token.add("root.attn.o", "input_0", "input", 0.3, "scores")  # the attention maths, no module
    token.add("root.attn.o", "output", "output", 0.3, "o")
    token.add("root.attn", "input_0", "input", 0.002, "x")
    token.add("root.attn", "output", "output", 0.3, "o")
    estimate = estimate_token(token.observations)["token0/root.attn.o/input_0"]
    assert (estimate.evidence, estimate.owner) == ("inline", "root.attn")
    assert estimate.expected == pytest.approx(math.hypot(0.004, 0.003))  # the two largest sources


def layers(ratios, inherited=0.02):
    """Leaf ``proj`` nodes, one per layer, all fed ``root.embed``'s output, whose output error is
    ``ratio`` x their input error."""
    token = Token()
    token.add("root.embed", "output", "output", inherited, "x")
    for i, ratio in enumerate(ratios):
        token.add(f"root.layers.{i}.proj", "input_0", "input", inherited, "x")
        token.add(f"root.layers.{i}.proj", "output", "output", ratio * inherited, f"y{i}")
    return token


def proj_outputs(token):
    estimates = estimate_token(token.observations)
    return {key: e for key, e in estimates.items() if key.endswith(".proj/output")}


def test_the_peer_gain_explains_how_every_layer_passes_error_on():
    estimates = estimate_token(layers([1.05] * 6).observations)
    assert all(
        e.introduced == pytest.approx(0.0, abs=1e-12) for e in proj_outputs(layers([1.05] * 6)).values()
    )
    assert "peer gain 1.050" in estimates["token0/root.layers.3.proj/output"].detail


def test_one_layer_standing_out_of_its_peers_is_flagged():
    estimates = proj_outputs(layers([1.02, 1.03, 1.02, 1.3, 1.03, 1.02]))
    flagged = max(estimates.values(), key=lambda e: e.introduced)
    assert flagged.owner == "root.layers.3.proj"
    fence = 1.03 + 1.5 * (1.03 - 1.02)  # quartiles 1.02 and 1.03 (inclusive), the outlier left out
    assert flagged.introduced == pytest.approx(excess(1.3 * 0.02, fence * 0.02))
    assert "peer gain 1.045" in flagged.detail


def test_a_ratio_within_its_peers_scatter_is_not_charged():
    # a decode token's small k/v projections: ratios scatter by about 10% around 1 over the layers
    ratios = [0.9, 0.95, 1.0, 1.02, 1.05, 1.08, 0.97, 1.1, 0.93, 1.01]
    for estimate in proj_outputs(layers(ratios)).values():
        assert estimate.introduced == pytest.approx(0.0, abs=1e-12)


def test_a_defect_in_every_layer_is_not_explained_away_by_its_peers():
    for estimate in proj_outputs(layers([3.0] * 6)).values():
        assert estimate.introduced == pytest.approx(excess(0.06, GAIN_RANGE[1] * 0.02))


def test_peer_keys_wildcard_layer_numbers_only():
    observation = layers([1.0]).observations[2]
    assert peer_key(observation) == "root.layers.*.proj/output"


def test_the_local_verdict_applies_the_dtype_limit_and_the_resolution():
    token = chain([0.003, 0.0031, math.hypot(0.0031, 0.02), 0.3, 0.305])
    verdicts = judge_token(token.observations)
    assert verdicts["token0/root.l1/output"].passed
    failed = [key for key, verdict in verdicts.items() if not verdict.passed]
    # l2 adds 2% (> the bf16 limit 1%); l3 adds 0.3 of its own; l4's small excess over an inherited
    # 0.3 (0.055) is within a quarter of it (the resolution of a leaf's estimate)
    assert failed == ["token0/root.l2/output", "token0/root.l3/output"]
    assert RESOLUTION["leaf"] == 1 / 4
    assert verdicts["token0/root.l4/output"].limit == pytest.approx(0.3 / 4)
    assert "resolution" in verdicts["token0/root.l4/output"].source


def test_an_input_from_outside_the_dump_tree_is_not_charged_to_anyone():
    token = Token()  # a flat dump (no module tree): the first node's input comes from no dumped output
    token.add("op0", "output", "output", 0.002, "a")
    token.add("op1", "input_0", "input", 0.05, "b")
    token.add("op1", "output", "output", 0.05, "c")
    estimates = estimate_token(token.observations)
    assert estimates["token0/op1/input_0"].introduced == 0.0
    assert estimates["token0/op1/input_0"].evidence == "unknown source"
    assert estimates["token0/op1/output"].introduced == 0.0


def test_masks_are_not_judged_and_integers_must_be_equal():
    token = Token()
    token.add("root.m", "input_0", "input", 0.004, "mask", kind="mask")
    token.add("root.m", "kwarg_ids", "input", 0.5, "ids", kind="exact")
    token.add("root.m", "output", "output", 0.002, "y")
    verdicts = judge_token(token.observations)
    assert verdicts["token0/root.m/input_0"].passed and "mask" in verdicts["token0/root.m/input_0"].note
    assert not verdicts["token0/root.m/kwarg_ids"].passed
    assert verdicts["token0/root.m/output"].passed


def test_limits_per_dtype_and_the_override():
    assert limit_for(BF16) == (LOCAL_LIMITS[BF16], f"local limit ({BF16})")
    assert limit_for("torch.float16", 0.5) == (0.5, "max_introduced setting")
    with pytest.raises(ValueError, match=r"no local limit for torch\.complex64"):
        limit_for("torch.complex64")


def attention_with_replays():
    """``root.attn`` (children q, o) with accumulated errors far above what either adds itself."""
    token = Token()
    token.add("root.attn.q", "input_0", "input", 0.05, "x")
    token.add("root.attn.q", "output", "output", 0.05, "q")
    token.add("root.attn.o", "input_0", "input", 0.05, "scores")
    token.add("root.attn.o", "output", "output", 0.05, "o")
    token.add("root.attn", "input_0", "input", 0.05, "x")
    token.add("root.attn", "output", "output", 0.05, "y")  # computed in root.attn (o + x, say)
    return token


def test_a_leaf_replay_is_its_own_error():
    token = attention_with_replays()
    verdicts = judge_token(token.observations, replayed={"token0/root.attn.q/output": 0.004})
    estimate = verdicts["token0/root.attn.q/output"].estimate
    assert (estimate.introduced, estimate.expected, estimate.evidence) == (0.004, 0.0, "replay")
    assert verdicts["token0/root.attn.q/output"].passed
    failing = judge_token(token.observations, replayed={"token0/root.attn.q/output": 0.02})
    assert not failing["token0/root.attn.q/output"].passed


@given(st.floats(0.0, 0.008), st.floats(0.0, 0.008), st.floats(0.0, 0.2))
def test_a_composite_replay_charges_its_own_code_with_what_its_children_do_not_explain(q, o, own):
    token = attention_with_replays()
    children = math.hypot(q, o)
    total = math.hypot(children, own)
    replayed = {
        "token0/root.attn.q/output": q,
        "token0/root.attn.o/output": o,
        "token0/root.attn/output": total,
    }
    verdict = judge_token(token.observations, replayed=replayed)["token0/root.attn/output"]
    assert verdict.estimate.expected == pytest.approx(children)
    assert verdict.estimate.introduced == pytest.approx(own, abs=1e-9)
    assert verdict.estimate.owner == "root.attn"
    assert verdict.passed == (verdict.estimate.introduced <= max(LOCAL_LIMITS[BF16], children / 2))


def test_a_child_without_replay_counts_with_its_estimate():
    token = attention_with_replays()
    replayed = {"token0/root.attn/output": 0.05}  # the children's accumulated 0.05 is all inherited
    verdict = judge_token(token.observations, replayed=replayed)["token0/root.attn/output"]
    assert verdict.estimate.expected == 0.0  # their estimates: they introduce nothing
    assert verdict.estimate.introduced == 0.05 and not verdict.passed


def test_a_composite_output_handed_on_from_a_child_keeps_the_propagation_estimate():
    token = attention_with_replays()
    token.add("root", "output", "output", 0.05, "y")  # root returns root.attn's output as it is
    replayed = {"token0/root/output": 0.05, "token0/root.attn/output": 0.004}
    estimate = judge_token(token.observations, replayed=replayed)["token0/root/output"].estimate
    assert (estimate.evidence, estimate.introduced) == ("carried", 0.0)


def outputs_only_layer(norm_error, q_error, k_error, layer_error):
    """``root.layer`` (inputs not dumped) after ``root.embed``: its norm, then attention's q and k."""
    token = Token()
    token.add("root.embed", "output", "output", 0.004, "e")
    token.add("root.layer.norm", "output", "output", norm_error, "n")
    token.add("root.layer.attn.q", "output", "output", q_error, "q")
    token.add("root.layer.attn.k", "output", "output", k_error, "k")
    token.add("root.layer.attn", "output", "output", k_error, "a")
    token.add("root.layer", "output", "output", layer_error, "l")
    return token


def test_a_node_without_inputs_is_explained_by_the_outputs_just_before_it():
    estimates = estimate_token(outputs_only_layer(0.004, 0.006, 0.006, 0.006).observations)
    norm = estimates["token0/root.layer.norm/output"]  # first in its module: the module's outside
    assert norm.expected == pytest.approx(0.004) and norm.introduced == 0
    assert norm.detail.startswith(
        "no inputs dumped: 0.004 from the outputs before it (token0/root.embed/output)"
    )
    q = estimates["token0/root.layer.attn.q/output"]  # first in attn: climbs to the layer's norm
    assert q.expected == pytest.approx(0.004) and q.introduced == pytest.approx(
        math.sqrt(0.006**2 - 0.004**2)
    )
    k = estimates["token0/root.layer.attn.k/output"]  # q is its sibling before it
    assert k.expected == pytest.approx(0.006) and k.introduced == 0


def test_an_uncompared_input_makes_the_outputs_before_stand_in():
    token = chain([0.01, 0.01, 0.01])
    del token.observations[4]  # root.l2's input_0: no partner on my side
    estimate = estimate_token(token.observations, uncompared_inputs={"root.l2"})["token0/root.l2/output"]
    assert estimate.detail.startswith("inputs not compared:") and estimate.introduced == 0
    alone = estimate_token(token.observations)["token0/root.l2/output"]  # told nothing: no inputs dumped
    assert alone.detail.startswith("no inputs dumped:") and alone.introduced == 0


@given(st.floats(0.02, 0.5))
def test_a_defect_stands_out_of_the_stand_in(own):
    inherited = 0.004
    error = math.sqrt(inherited**2 + own**2)
    estimates = estimate_token(outputs_only_layer(0.004, error, error, error).observations)
    assert estimates["token0/root.layer.attn.q/output"].introduced == pytest.approx(own, rel=1e-9)
