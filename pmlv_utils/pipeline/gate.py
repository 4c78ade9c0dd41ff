"""The deploy gate: test accuracy AND the explanation check, and the reason of the decision.

    deploy_decision  (accuracy, background share, thresholds) -> GateDecision(deploy, reason)

The pipeline draws the same gate with two nested ``dsl.If`` groups (``graph``); this function
is what a run reports afterwards (``PipelineRun.gate_message``) and what the tests check. A
model is deployed only when its test accuracy is at least ``accuracy_threshold`` AND the
background share of its explanations (``explain-check``: the share of the positive IG evidence
that falls outside the flowers, inside the model's field of view, for the worst class) is at
most ``background_threshold``: a model that scores well by looking at the sky is refused.
"""

import math
from typing import NamedTuple

ACCURACY_GATE = "accuracy-gate"
EXPLANATION_GATE = "explanation-gate"
DEFAULT_ACCURACY_THRESHOLD = 0.7
# The share of the evidence (worst class) that may lie on the background. On the easy
# synthetic flowers (64 px, 8 epochs) a normal model puts about 0.47 there and a model trained
# with every tulip on the sky about 0.6; the background is about 0.63 of the pixels (chance).
DEFAULT_BACKGROUND_THRESHOLD = 0.55


class GateDecision(NamedTuple):
    deploy: bool
    reason: str
    failed: tuple[str, ...]  # the gates that did not pass (ACCURACY_GATE, EXPLANATION_GATE)


def _checked(name: str, value) -> float:
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"deploy gate: {name} is not a number (nan)")
    return value


def deploy_decision(
    accuracy: float | None,
    background_share: float | None,
    accuracy_threshold: float = DEFAULT_ACCURACY_THRESHOLD,
    background_threshold: float = DEFAULT_BACKGROUND_THRESHOLD,
) -> GateDecision:
    """Deploy only when ``accuracy >= accuracy_threshold`` and ``background_share <=
    background_threshold``; the reason names every number compared. A value that is None
    (its step did not run) refuses; a nan threshold or share is an error (a map with no
    positive evidence gives nan: the check could not be made)."""
    a_limit = _checked("accuracy_threshold", accuracy_threshold)
    b_limit = _checked("background_threshold", background_threshold)
    if accuracy is None or background_share is None:
        missing = "test accuracy" if accuracy is None else "background share"
        return GateDecision(False, f"refused: no {missing} (its step did not run)", ())
    accuracy = _checked("accuracy", accuracy)
    share = _checked("background share", background_share)
    checks = (
        (ACCURACY_GATE, accuracy >= a_limit, f"test accuracy {accuracy:.3f}", ">=", "<", a_limit),
        (EXPLANATION_GATE, share <= b_limit, f"background share {share:.3f}", "<=", ">", b_limit),
    )
    failed = tuple(gate for gate, ok, *_ in checks if not ok)
    if not failed:
        passed = " and ".join(f"{what} {op} {limit}" for _, _, what, op, _, limit in checks)
        return GateDecision(True, f"deployed: {passed}", ())
    reasons = [f"{what} {bad} threshold {limit}" for _, ok, what, _, bad, limit in checks if not ok]
    passed = [f"{what} {op} {limit}" for _, ok, what, op, _, limit in checks if ok]
    reason = "refused: " + " and ".join(reasons) + (f" ({passed[0]} passed)" if passed else "")
    return GateDecision(False, reason, failed)
