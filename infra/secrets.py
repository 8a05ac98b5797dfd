"""The stack's generated secrets: made once by pulumi_random, kept secret in state, stored per cloud.

Tokens and the database password never appear in config files, boot scripts or outputs; each cloud's secret
store (Secret Manager, Key Vault) holds a copy that VMs read at boot with their own identity.
"""

from __future__ import annotations

import pulumi
import pulumi_random as random

# `:` and `\` are field separators / escapes in libpq's password file; keep them out of the password.
_PASSWORD_SPECIALS = "-_.~!#%^*+="


class GeneratedSecrets(pulumi.ComponentResource):
    """Agent token, app admin token, database password, the controllers' API token and the agents' push token."""

    agent_token: pulumi.Output[str]
    api_token: pulumi.Output[str]
    push_token: pulumi.Output[str]
    app_admin_token: pulumi.Output[str]
    db_password: pulumi.Output[str]

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:core:Secrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.agent_token = random.RandomPassword(f"{name}-agent-token", length=48, special=False, opts=child).result
        self.app_admin_token = random.RandomPassword(
            f"{name}-app-admin-token", length=48, special=False, opts=child
        ).result
        self.api_token = random.RandomPassword(f"{name}-api-token", length=48, special=False, opts=child).result
        self.push_token = random.RandomPassword(f"{name}-push-token", length=48, special=False, opts=child).result
        self.db_password = random.RandomPassword(
            f"{name}-db-password", length=32, special=True, override_special=_PASSWORD_SPECIALS, min_special=2,
            opts=child,
        ).result
        self.register_outputs(
            {
                "agent_token": self.agent_token,
                "app_admin_token": self.app_admin_token,
                "db_password": self.db_password,
                "api_token": self.api_token,
                "push_token": self.push_token,
            }
        )

    def named(self) -> dict[str, pulumi.Output[str]]:
        """Secret name (as stored in each cloud's secret store) -> value."""
        return {
            "agent-token": self.agent_token,
            "app-admin-token": self.app_admin_token,
            "db-password": self.db_password,
            "api-token": self.api_token,
            "push-token": self.push_token,
        }
