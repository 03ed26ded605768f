"""`make bench`: runs every benchmark and prints a table of ratios.

The benchmarks arrive with the features they measure (token endpoint, consent decision,
document streaming, audit appends); until then this prints what exists.
"""

from __future__ import annotations

from bench import (
    aead,
    api_load,
    audit_export,
    audit_verify,
    consent_decision,
    documents,
    mixed,
    national,
    operator_jobs,
    token_endpoint,
)


def main() -> None:
    """Run the benchmarks in turn."""
    audit_verify.main()
    audit_export.main()
    token_endpoint.main()
    consent_decision.main()
    aead.main()
    documents.main()
    operator_jobs.main([])
    api_load.main()
    mixed.main()
    # Last: about 35 minutes (loads 1% of the national figures, then grows to 10%).
    national.main()


if __name__ == "__main__":
    main()
