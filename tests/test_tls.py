"""Outbound HTTP clients share one TLS context, and it verifies the servers they call."""

import ssl

from bedel.tls import tls_context


class TestTLSContext:
    def test_one_context_per_process_that_checks_certificates_and_host_names(self) -> None:
        context = tls_context()

        assert tls_context() is context
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname
