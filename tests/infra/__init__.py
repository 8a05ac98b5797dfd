"""Tests of the Pulumi programs (under Pulumi's mocks), the policy pack and the offline plan."""

import warnings

with warnings.catch_warnings():
    # pulumi_gcp.compute loads deprecated aliases (MangedSslCertificate, RouterStatus) that warn once, when the
    # lazily imported module first executes; let that happen here, quietly.
    warnings.simplefilter("ignore", DeprecationWarning)
    import pulumi_gcp.compute

    _ = pulumi_gcp.compute.Network
