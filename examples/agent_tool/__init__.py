"""An AI-agent tool runtime on Corridor: ``list_accounts`` and ``make_payment`` backed by the
demo payments API, with a DPoP-bound token whose ``authorization_details`` name the tools and
the budget, RFC 9470 step-up, and the agent's own hash-chained evidence trail.

Run it from the repository root: ``.venv/bin/python -m examples.agent_tool --help``.
"""

from .runtime import (
    DEMO_CALLS,
    STEP_UP_CALLS,
    TOOLS,
    AgentToolRuntime,
    ApprovalError,
    AutoApprover,
    BrowserApprover,
    Config,
    StepUpUnsatisfied,
    ToolResult,
    Trail,
)

__all__ = [
    "DEMO_CALLS",
    "STEP_UP_CALLS",
    "TOOLS",
    "AgentToolRuntime",
    "ApprovalError",
    "AutoApprover",
    "BrowserApprover",
    "Config",
    "StepUpUnsatisfied",
    "ToolResult",
    "Trail",
]
