"""The CrossGuard pack: wraps the plain validators of `validators.py`; no rule logic lives here.

Each resource rule gets the stack's timer budget from the policy config (`budget`, the same mapping as the
stack's `drainctl:budget`; `python -m infra.plan <stack> --policy-config` prints it) and the resource's
secret outputs. The stack rules (replicas, the cross-cloud path) look at the whole stack.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# Pulumi runs this file by path from infra/policy/; the repository root holds the `infra` and `controller` packages.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from controller.core.budget import Budget
from infra.policy.validators import RESOURCE_RULES, STACK_RULES, Context, Props, ResourceRule

BUDGET_SCHEMA = PolicyConfigSchema(properties={"budget": {"type": "object"}})


def _resource_policy(name: str, description: str, rule: ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        context = Context(
            budget=Budget.from_mapping(args.get_config().get("budget") or {}),
            secret_paths=tuple(args.opts.additional_secret_outputs or ()),
        )
        for violation in rule(args.resource_type, args.props, context):
            report_violation(violation, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate, config_schema=BUDGET_SCHEMA)


def _stack_policy(
    name: str, description: str, rule: Callable[[Sequence[tuple[str, Props]]], list[str]]
) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for violation in rule([(resource.resource_type, resource.props) for resource in args.resources]):
            report_violation(violation, None)

    return StackValidationPolicy(name=name, description=description, validate=validate)


PolicyPack(
    name="drainctl",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        *(_resource_policy(name, description, rule) for name, (description, rule) in RESOURCE_RULES.items()),
        *(_stack_policy(name, description, rule) for name, (description, rule) in STACK_RULES.items()),
    ],
)
