"""The CrossGuard policy pack: the incident's lessons as rules `pulumi preview --policy-pack infra/policy` enforces."""
