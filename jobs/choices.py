"""The names the scripts' parsers offer (--rule, --parts, --decoder, --tta), read from the light modules
that own them.

A script builds its parser from this module and core alone and imports its job inside main(): this
module costs numpy and the rule table, never torch, scikit-learn, scipy or pandas, so every `--help`
answers at once (tests/test_no_gpu_stack.py checks what a `--help` imports).
"""
from __future__ import annotations

from ensemble import rules
from ensemble.rules import rule_names
from predict.cache import DECODERS, PARTS
from predict.tta import VIEW_HELP

__all__ = ["AUDIT_RULES", "DECODERS", "PARTS", "REPORT_RULES", "VIEW_HELP", "rule_names"]

# A report without a recipe applies a rule that fits nothing (a fitted rule comes as a vote's recipe file).
REPORT_RULES = tuple(name for name, rule in rules.RULES.items() if not rule.fitted)
# unfitted: a rule fitted on the labels under audit would trust them
AUDIT_RULES = ("soft", "geometric", "logit")
